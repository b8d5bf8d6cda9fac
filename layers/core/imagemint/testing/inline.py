"""A pipeline that runs the state machine's steps in-process, in the ASL's order.

For unit tests of the dialects and the service without AWS: same steps, same
error recording as ``statemachine/generate.asl.json`` (the entry
choice for resumed jobs, the Catch paths, the webhook after the record), no
Step Functions. ``run`` and ``start`` run the execution before they return (there is no
background here); ``webhook_attempts`` stands in for the ASL's retry count.
"""

from __future__ import annotations

import json
from typing import Any

from imagemint.domain import credentials, provenance, steps
from imagemint.domain.models import GenerationRequest
from imagemint.errors import ImagemintError, PipelineFailed
from imagemint.wiring import Deps


def _catch(exc: Exception) -> dict[str, Any]:
    message = json.dumps(exc.to_dict()) if isinstance(exc, ImagemintError) else str(exc)
    name = type(exc).__name__
    return {"Error": name, "Cause": json.dumps({"errorMessage": message, "errorType": name})}


class InlinePipeline:
    def __init__(self, deps: Deps, *, webhook_attempts: int = 1) -> None:
        self._deps = deps
        self.webhook_attempts = webhook_attempts
        self.started: list[dict[str, Any]] = []

    def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """A synchronous request: runs the whole execution before it returns (the job record holds the
        outcome, which is what the service reads); a generation failure is recorded, not raised."""
        try:
            self.run_sync(job_id, GenerationRequest.model_validate(payload["request"]))
        except PipelineFailed:
            pass
        return f"inline:{name or job_id}"

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        payload = {"job_id": job_id, "request": request.model_dump(exclude_none=True), "mode": "sync"}
        return self._run(payload)

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        self.started.append(payload)
        try:
            self._run(payload)
        except PipelineFailed:
            pass  # an async caller learns the outcome from the job record
        return f"inline:{name or job_id}"

    def _run(self, payload: dict[str, Any]) -> dict[str, Any]:
        d = self._deps
        job_id = payload["job_id"]
        request = GenerationRequest.model_validate(payload["request"])
        state = dict(payload)
        entry = state.get("resume_from")
        if entry in (None, "sign"):  # the ASL's Start: Generate, or (a swept job resumed) Sign
            try:
                made = steps.generate(d, job_id, request) if entry is None else None
                result = made.model_dump(exclude_none=True) if made is not None else state["result"]
                signed = credentials.sign_images(d, job_id, request, result)
            except ImagemintError as exc:
                error = _catch(exc)
                steps.record_failure(d, job_id, error)
                self._notify(state)
                raise PipelineFailed("FAILED", error["Error"], error["Cause"]) from None
            state["result"] = signed
        try:
            if request.archive:
                if entry in (None, "sign", "archive"):
                    state["archives"] = [
                        provenance.archive_image(d, job_id, img, i)
                        for i, img in enumerate(state["result"]["images"])
                    ]
                if entry != "mint":
                    state["metadata"] = provenance.archive_metadata(d, job_id, state)
                if request.mint:
                    state["moment"] = provenance.mint(d, job_id, request.account_id, state["metadata"]["uri"])
        except Exception as exc:  # the ASL's Catch on every provenance state
            state["provenance_error"] = _catch(exc)
        out = steps.record_state(d, state)
        self._notify(state)
        return out

    def _notify(self, state: dict[str, Any]) -> None:
        if not state["request"].get("webhook_url"):
            return
        from imagemint.domain import webhooks

        attempts = self.webhook_attempts if state.get("mode") == "async" else 1
        for _ in range(attempts):
            try:
                webhooks.deliver(self._deps, state["job_id"])
                return
            except ImagemintError:
                continue
