"""S3 trigger: objects under ingest/ are archived and minted (images) or generated (.json requests)."""

from imagemint.domain import ingest
from imagemint.observability import logger
from imagemint.wiring import get_deps


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    return ingest.handle(event, get_deps())
