"""Recoup content templates: GET /api/content/templates and /api/content/templates/{id}."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
content = Later("imagemint.api.content")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.get("/api/content/templates")
def list_templates():
    return content.handle_templates(app.current_event.raw_event, wiring.get_deps())


@app.get("/api/content/templates/<id>")
def get_template(id: str):  # noqa: A002 - the route's parameter name
    return content.handle_templates(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
