"""S3 trigger: objects under ingest/ are archived and minted (images) or generated (.json requests)."""

from imagemint import ingest
from imagemint.deps import get_deps
from imagemint.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    return ingest.handle(event, get_deps())
