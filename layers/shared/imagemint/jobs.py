"""``GET /api/jobs/{id}``: a job's record, for the account that owns it.

Auth: ``x-api-key`` or ``Authorization: Bearer``. Another account's job is a 404
(not a 403), so job ids cannot be probed. Errors: ``{"error": "..."}``.
"""

from __future__ import annotations

import re
from typing import Any

from imagemint import auth
from imagemint.deps import Deps
from imagemint.dialects.common import HttpRequest, guarded, response
from imagemint.errors import ImagemintError, NotFound

_JOB = re.compile(r"^[0-9a-f-]{36}$")
PUBLIC_FIELDS = (
    "job_id",
    "status",
    "dialect",
    "model",
    "created_at",
    "updated_at",
    "transitions",
    "error",
    "resume_from",
    "provenance_error",
)


def error_response(exc: ImagemintError) -> Any:
    return response(exc.status, {"error": exc.message})


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        account = auth.authenticate(deps.accounts, deps.settings, req.api_key())
        job_id = req.path_params.get("id", "")
        job = deps.jobs.get(job_id) if _JOB.match(job_id) else None
        if job is None or job.account_id != account.account_id:
            raise NotFound("Job not found")
        data = job.model_dump()
        body = {k: data.get(k) for k in PUBLIC_FIELDS}
        result = data.get("result") or None
        if result:
            body["result"] = {
                k: result.get(k)
                for k in (
                    "images",
                    "model",
                    "requested_model",
                    "provider",
                    "size",
                    "usage",
                    "warnings",
                    "cost_usd",
                    "archive",
                    "metadata_archive",
                    "moment",
                )
            }
            body["result"]["image_urls"] = [
                f"{req.base_url}/api/files/{img['key'].removeprefix('images/')}"
                for img in result.get("images", [])
            ]
        return response(200, body)

    return run()
