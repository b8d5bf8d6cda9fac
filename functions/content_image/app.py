"""Recoup content: POST /api/content/image."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.api import content
from imagemint.observability import logger
from imagemint.wiring import get_deps

app = APIGatewayHttpResolver()


@app.post("/api/content/image")
def create_image():
    return content.handle_image(app.current_event.raw_event, get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
