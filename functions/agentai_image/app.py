"""agent.ai: POST /action/generate_image."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.api import agentai
from imagemint.observability import logger
from imagemint.wiring import get_deps

app = APIGatewayHttpResolver()


@app.post("/action/generate_image")
def generate_image():
    return agentai.handle(app.current_event.raw_event, get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
