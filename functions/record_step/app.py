"""State machine task: record a job's outcome (success with what provenance produced, or a failure)."""

from imagemint.domain import steps
from imagemint.observability import logger
from imagemint.wiring import get_deps


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler
def lambda_handler(event, context=None):
    if event.get("action") == "failure":
        return steps.record_failure(get_deps(), event["job_id"], event.get("error"))
    return steps.record_state(get_deps(), event["state"])
