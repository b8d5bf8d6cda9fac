"""A pipeline that runs the state machine's steps in-process, in the ASL's order.

For unit tests of the dialects and the service without AWS: same steps, same
error recording as ``statemachine/generate.asl.json``, no Step Functions.
"""

from __future__ import annotations

import json
from typing import Any

from imagemint import steps
from imagemint.adapters.aws import PipelineFailed
from imagemint.deps import Deps
from imagemint.errors import ImagemintError
from imagemint.models import GenerationRequest


class InlinePipeline:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        try:
            result = steps.generate(self._deps, job_id, request)
        except ImagemintError as exc:
            cause = json.dumps({"errorMessage": json.dumps(exc.to_dict()), "errorType": type(exc).__name__})
            steps.record_failure(self._deps, job_id, {"Error": type(exc).__name__, "Cause": cause})
            raise PipelineFailed("FAILED", type(exc).__name__, cause) from None
        return steps.record(self._deps, job_id, result.model_dump(exclude_none=True))
