"""The sweeper: closes jobs whose execution died, so no accepted job stays open forever.

Every state machine path ends in Record or RecordFailure, but an execution
can still die without either (an Express execution is stopped at 5 minutes;
a Lambda or the service can fail outright). A scheduled function reads the
jobs still ACCEPTED or RUNNING whose record has not changed for
``sweep_after_s`` (15 minutes: far beyond any execution's life) and closes each:

* images were made (the generate step writes them to the job at once): the
  Record step's logic runs on what the job holds: PARTIAL with ``resume_from``
  when archiving or minting was asked for (``POST /api/jobs/{id}/resume``
  finishes it), else SUCCEEDED. The images are kept either way.
* no image was made: FAILED, and the charge is returned (once, as always).

Each job is claimed with a conditional update first (its status must not
have moved), so a sweep never races a live execution or a second sweep. A
job with a ``webhook_url`` gets one delivery attempt of its new status.
"""

from __future__ import annotations

import json
import time
from typing import Any

from imagemint.domain import credits, steps
from imagemint.domain.ports import Deps
from imagemint.errors import Conflict, ImagemintError, InternalError
from imagemint.observability import logger

BATCH = 100


def _stopped(message: str) -> dict[str, Any]:
    """A Catch-shaped error for ``steps.record_state`` (as if the state machine had caught it)."""
    err = InternalError(message).to_dict()
    return {"Error": "States.Timeout", "Cause": json.dumps({"errorMessage": json.dumps(err)})}


def sweep(deps: Deps, *, now: float | None = None) -> dict[str, list[str]]:
    cutoff = (time.time() if now is None else now) - deps.settings.sweep_after_s
    closed: dict[str, list[str]] = {"SUCCEEDED": [], "PARTIAL": [], "FAILED": []}
    for job in deps.jobs.stale_open_jobs(cutoff, BATCH):
        try:
            deps.jobs.update(job.job_id, expect_status=job.status, swept_at=time.time())
        except Conflict:
            continue  # it moved since the query: someone else has it
        images = (job.result or {}).get("images")
        if images:
            state = {
                "job_id": job.job_id,
                "request": job.request,
                "result": job.result,
                "provenance_error": _stopped("The pipeline stopped after the images were made"),
            }
            steps.record_state(deps, state)
            after = deps.jobs.get(job.job_id)
            status = after.status if after else "PARTIAL"
        else:
            error = InternalError("The pipeline stopped before any image was made; the charge was returned")
            credits.refund_failed(deps, job.job_id)  # before the status, as the Record step does
            deps.jobs.update(job.job_id, status="FAILED", error=error.to_dict())
            status = "FAILED"
        closed.setdefault(str(status), []).append(job.job_id)
        logger.warning("swept a job whose execution died", extra={"job_id": job.job_id, "status": status})
        if job.request.get("webhook_url"):
            from imagemint.domain import webhooks

            try:
                webhooks.deliver(deps, job.job_id)
            except ImagemintError:
                pass  # recorded on the job by deliver()
    return closed
