"""The gallery: GET /gallery (the page for the key's account), GET /api/gallery (its data, with the key),
GET /moments/{ref} (one public moment's page)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
gallery = Later("imagemint.api.gallery")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.get("/gallery")
def get_gallery_page():
    return gallery.handle_shell(app.current_event.raw_event, wiring.get_deps())


@app.get("/api/gallery")
def get_gallery():
    return gallery.handle_account(app.current_event.raw_event, wiring.get_deps())


@app.get("/moments/<ref>")
def get_moment_page(ref: str):
    return gallery.handle_moment(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
