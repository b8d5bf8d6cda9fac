"""A pipeline that runs the state machine's steps in-process, in the ASL's order.

For unit tests of the dialects and the service without AWS: same steps, same
error recording as ``functions/statemachine/generate.asl.json``, no Step Functions.
"""

from __future__ import annotations

import json
from typing import Any

from imagemint import provenance, steps
from imagemint.adapters.aws import PipelineFailed
from imagemint.deps import Deps
from imagemint.errors import ImagemintError
from imagemint.models import GenerationRequest


def _catch(exc: Exception) -> dict[str, Any]:
    message = json.dumps(exc.to_dict()) if isinstance(exc, ImagemintError) else str(exc)
    name = type(exc).__name__
    return {"Error": name, "Cause": json.dumps({"errorMessage": message, "errorType": name})}


class InlinePipeline:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        d = self._deps
        try:
            result = steps.generate(d, job_id, request)
        except ImagemintError as exc:
            error = _catch(exc)
            steps.record_failure(d, job_id, error)
            raise PipelineFailed("FAILED", error["Error"], error["Cause"]) from None
        state: dict[str, Any] = {
            "job_id": job_id,
            "request": request.model_dump(exclude_none=True),
            "result": result.model_dump(exclude_none=True),
        }
        try:
            if request.archive:
                state["archives"] = [
                    provenance.archive_image(d, job_id, img, i)
                    for i, img in enumerate(state["result"]["images"])
                ]
                state["metadata"] = provenance.archive_metadata(d, job_id, state)
                if request.mint:
                    state["moment"] = provenance.mint(d, job_id, request.account_id, state["metadata"]["uri"])
        except Exception as exc:  # the ASL's Catch on every provenance state
            state["provenance_error"] = _catch(exc)
        return steps.record_state(d, state)
