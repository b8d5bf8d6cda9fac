"""OpenAI-compatible images: POST /api/images/generations, /v1/images/generations, /v1/images/edits;
GET /v1/models and /v1/models/{model} (the models we serve, with capabilities, prices and lifecycle)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
openai = Later("imagemint.api.openai")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.post("/api/images/generations")
@app.post("/v1/images/generations")
def generations():
    return openai.handle(app.current_event.raw_event, wiring.get_deps())


@app.post("/v1/images/edits")
def edits():
    return openai.handle(app.current_event.raw_event, wiring.get_deps(), edit=True)


@app.get("/v1/models")
def models():
    return openai.handle_models(app.current_event.raw_event, wiring.get_deps())


@app.get("/v1/models/<model>")
def model(model: str):
    return openai.handle_models(app.current_event.raw_event, wiring.get_deps(), model)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
