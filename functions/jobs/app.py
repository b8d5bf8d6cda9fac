"""Jobs: GET /api/jobs/{id} (the owner's view of a job), POST /api/jobs/{id}/resume (a PARTIAL job)."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from imagemint.lazy import Later
from imagemint.observability import logger

# Imported by the first request, not at init (imagemint.lazy; README, "Cold starts").
jobs = Later("imagemint.api.jobs")
wiring = Later("imagemint.wiring")

app = APIGatewayHttpResolver()


@app.get("/api/jobs/<id>")
def get_job(id: str):  # noqa: A002 - the route's parameter name
    return jobs.handle(app.current_event.raw_event, wiring.get_deps())


@app.post("/api/jobs/<id>/resume")
def resume_job(id: str):  # noqa: A002 - the route's parameter name
    return jobs.handle_resume(app.current_event.raw_event, wiring.get_deps())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    return app.resolve(event, context)
