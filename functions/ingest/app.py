"""S3 trigger: objects under ingest/ are archived and minted (images) or generated (.json requests)."""

from imagemint.domain import ingest
from imagemint.observability import logger
from imagemint.wiring import get_deps

# Left to write the result document after waiting for a job another delivery is running.
MARGIN_S = 10.0


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 0.0
    return ingest.handle(event, get_deps(), wait_s=max(0.0, remaining - MARGIN_S), retry_open=True)
