"""``GET /api/jobs/{id}``: a job's record, for the account that owns it.

Auth: ``x-api-key`` or ``Authorization: Bearer``. Another account's job is a 404
(not a 403), so job ids cannot be probed. Errors: ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from imagemint import auth, service
from imagemint.deps import Deps
from imagemint.dialects.common import HttpRequest, guarded, plain_error_response, response
from imagemint.errors import NotFound
from imagemint.models import JOB_ID, StoredImage

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


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        account = auth.authenticate(deps.accounts, deps.settings, req.api_key())
        job_id = req.path_params.get("id", "")
        job = deps.jobs.get(job_id) if JOB_ID.match(job_id) else None
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
            images = [StoredImage.model_validate(img) for img in result.get("images", [])]
            body["result"]["image_urls"] = [service.file_url(req.base_url, img) for img in images]
        return response(200, body)

    return run()
