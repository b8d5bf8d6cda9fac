"""State machine task: record a job's outcome (success, or the failure a Catch passed on)."""

from imagemint import steps
from imagemint.deps import get_deps
from imagemint.observability import logger


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler
def lambda_handler(event, context=None):
    if event.get("action") == "failure":
        return steps.record_failure(get_deps(), event["job_id"], event.get("error"))
    return steps.record(get_deps(), event["job_id"], event["result"])
