"""agent.ai: POST /action/generate_image."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
agentai = Later("imagemint.api.agentai")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.post("/action/generate_image")
def generate_image():
    return agentai.handle(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
