"""Durable image URLs: GET /api/files/{job_id}/{name} -> 302 to a fresh signed S3 URL."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
files = Later("imagemint.api.files")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.get("/api/files/<job_id>/<name>")
def get_file(job_id: str, name: str):
    return files.handle(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context):
    return app.resolve(event, context)
