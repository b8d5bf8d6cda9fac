"""Recoup content: POST /api/content/image."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
content = Later("imagemint.api.content")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.post("/api/content/image")
def create_image():
    return content.handle_image(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
