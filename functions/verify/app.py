"""Public provenance check: GET /api/verify/{ref} -> a verdict per link (image, Arweave, metadata, token)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.api import verify
from imagemint.observability import logger
from imagemint.wiring import get_deps

app = APIGatewayHttpResolver()


@app.get("/api/verify/<ref>")
def get_verdict(ref: str):
    return verify.handle(app.current_event.raw_event, get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
