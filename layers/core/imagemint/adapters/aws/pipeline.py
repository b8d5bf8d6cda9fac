"""Step Functions pipeline: the Express state machine, run synchronously or started."""

from __future__ import annotations

import json
from typing import Any

from imagemint.domain.models import GenerationRequest
from imagemint.errors import PipelineFailed


class StepFunctionsPipeline:
    """Runs the Express state machine: synchronously (StartSyncExecution) or started (StartExecution)."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        r = self._sfn.start_execution(
            stateMachineArn=self._arn, name=name or job_id, input=json.dumps(payload)
        )
        return str(r.get("executionArn") or "")

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        payload = json.dumps(
            {"job_id": job_id, "request": request.model_dump(exclude_none=True), "mode": "sync"}
        )
        r = self._sfn.start_sync_execution(stateMachineArn=self._arn, name=job_id, input=payload)
        status = r.get("status")
        if status == "SUCCEEDED":
            return json.loads(r.get("output") or "{}")
        raise PipelineFailed(status or "FAILED", r.get("error"), r.get("cause"))
