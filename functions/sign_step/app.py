"""State machine task: sign a C2PA manifest into each stored image of a job (before archive and delivery)."""

from imagemint.domain import credentials, steps
from imagemint.domain.models import GenerationRequest
from imagemint.observability import logger
from imagemint.wiring import content_signer, get_deps


def warm():
    """GenerateAndWarm: the stores and the C2PA signer (its chain and key read from SSM)."""
    content_signer(get_deps().settings)


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler(warm=warm)
def lambda_handler(event, context=None):
    request = GenerationRequest.model_validate(event["request"])
    return credentials.sign_images(get_deps(), event["job_id"], request, event["result"])
