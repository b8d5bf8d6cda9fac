"""Recoup legacy: GET /api/image/generate."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.api import legacy
from imagemint.observability import logger
from imagemint.wiring import get_deps

app = APIGatewayHttpResolver()


@app.get("/api/image/generate")
def generate():
    return legacy.handle(app.current_event.raw_event, get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
