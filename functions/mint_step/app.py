"""State machine task: mint the job's moment (Zora 1155) from its archived metadata."""

from imagemint.domain import provenance, steps
from imagemint.observability import logger
from imagemint.wiring import get_deps, minter


def warm():
    """GenerateAndWarm: the stores and the minter (web3 and the signer's key; locally the embedded chain)."""
    minter(get_deps().settings)


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler(warm=warm)
def lambda_handler(event, context=None):
    return provenance.mint(get_deps(), event["job_id"], event["account_id"], event["metadata_uri"])
