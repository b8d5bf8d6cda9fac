"""State machine task: deliver the job's outcome to its webhook_url (signed; retried by the state machine)."""

from imagemint.domain import steps, webhooks
from imagemint.observability import logger
from imagemint.wiring import get_deps


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler
def lambda_handler(event, context=None):
    return webhooks.deliver(get_deps(), event["job_id"])
