"""The API's contract: GET /openapi.json (OpenAPI 3.1), GET /docs (Swagger UI) and its files.

The Swagger UI files in ``static/`` are copied byte for byte from a pinned package (swagger-ui-py,
the version pyproject's dev extra pins; a unit test compares them), so the page needs no CDN.
"""

from pathlib import Path

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
openapi = Later("imagemint.api.openapi")

STATIC = Path(__file__).resolve().parent / "static"

app = APIGatewayHttpResolver()


def read_asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@app.get("/openapi.json")
def document():
    return openapi.handle_document(app.current_event.raw_event)


@app.get("/docs")
def docs():
    return openapi.handle_docs(app.current_event.raw_event)


@app.get("/docs/<asset>")
def asset(asset: str):
    return openapi.handle_asset(app.current_event.raw_event, read_asset)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
