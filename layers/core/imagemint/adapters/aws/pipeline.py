"""Step Functions pipeline: two state machines built from one ASL (``statemachine/generate.asl.json``).

* ``run``: a synchronous request's execution, started (``StartExecution``) on the **EXPRESS**
  machine. The caller does not hold the call open: it waits on the job record, up to its deadline
  (:func:`imagemint.domain.service.submit`), so an execution that outlives the HTTP answer keeps
  running and records its result where ``GET /api/jobs/{id}`` finds it. The ASL's step timeouts and
  retries keep every synchronous path under Express's 5 minutes (a unit test over the ASL sums them).
* ``start``: async jobs and resumes on the **STANDARD** machine (no 5-minute limit: webhook retries,
  slow providers). Without a STANDARD machine configured, the EXPRESS one.

Neither call is retried by the client (``imagemint.adapters.aws.client``): StartExecution on an
Express machine is not idempotent.
"""

from __future__ import annotations

import json
from typing import Any

from imagemint.domain.models import GenerationRequest
from imagemint.errors import PipelineFailed


class StepFunctionsPipeline:
    def __init__(self, sfn: Any, state_machine_arn: str, async_state_machine_arn: str = "") -> None:
        self._sfn = sfn
        self._arn = state_machine_arn
        self._async_arn = async_state_machine_arn or state_machine_arn

    def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start a synchronous request's execution on the EXPRESS machine; return its ARN at once."""
        r = self._sfn.start_execution(
            stateMachineArn=self._arn, name=name or job_id, input=json.dumps(payload)
        )
        return str(r.get("executionArn") or "")

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start an async job (or a resume) on the STANDARD machine; return its ARN at once."""
        r = self._sfn.start_execution(
            stateMachineArn=self._async_arn, name=name or job_id, input=json.dumps(payload)
        )
        return str(r.get("executionArn") or "")

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        """StartSyncExecution on the EXPRESS machine, held open to the end (not used by the service)."""
        payload = json.dumps(
            {"job_id": job_id, "request": request.model_dump(exclude_none=True), "mode": "sync"}
        )
        r = self._sfn.start_sync_execution(stateMachineArn=self._arn, name=job_id, input=payload)
        status = r.get("status")
        if status == "SUCCEEDED":
            return json.loads(r.get("output") or "{}")
        raise PipelineFailed(status or "FAILED", r.get("error"), r.get("cause"))
