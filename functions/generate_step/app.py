"""State machine task: generate the images of a job and keep them in the bucket."""

from imagemint.domain import steps
from imagemint.domain.models import GenerationRequest
from imagemint.observability import logger
from imagemint.wiring import get_deps


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler
def lambda_handler(event, context=None):
    request = GenerationRequest.model_validate(event["request"])
    return steps.generate(get_deps(), event["job_id"], request).model_dump(exclude_none=True)
