"""State machine task: archive one image (Map item) or the moment metadata on Arweave."""

from imagemint.domain import provenance, steps
from imagemint.observability import logger
from imagemint.wiring import archive_store, get_deps


def warm():
    """GenerateAndWarm: the stores and the Arweave store (its wallet read from SSM)."""
    archive_store(get_deps())


@logger.inject_lambda_context(clear_state=True)
@steps.step_handler(warm=warm)
def lambda_handler(event, context=None):
    if event.get("action") == "metadata":
        return provenance.archive_metadata(get_deps(), event["job_id"], event["state"])
    return provenance.archive_image(get_deps(), event["job_id"], event["image"], int(event["index"]))
