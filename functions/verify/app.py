"""Public provenance check: GET /api/verify/{ref} -> a verdict per link (image, Arweave, metadata, token)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
verify = Later("imagemint.api.verify")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.get("/api/verify/<ref>")
def get_verdict(ref: str):
    return verify.handle(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
