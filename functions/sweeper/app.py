"""Scheduled (every 5 minutes): close jobs whose state machine execution died (imagemint.domain.sweeper)."""

from imagemint.domain import sweeper
from imagemint.observability import logger
from imagemint.wiring import get_deps


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event, context=None):
    return sweeper.sweep(get_deps())
