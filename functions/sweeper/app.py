"""Scheduled (every 5 minutes): close jobs whose state machine execution died (imagemint.sweeper)."""

from imagemint import sweeper
from imagemint.deps import get_deps
from imagemint.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    return sweeper.sweep(get_deps())
