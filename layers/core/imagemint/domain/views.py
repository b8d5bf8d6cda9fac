"""What clients see of a job: its URLs and the owner's view of it.

One view serves ``GET /api/jobs/{id}`` (:mod:`imagemint.api.jobs`), the 202 of an
async request (:func:`imagemint.api.http.accepted_response`) and the body of a
webhook event (:mod:`imagemint.domain.webhooks`), so the three never drift apart.
"""

from __future__ import annotations

from typing import Any

from imagemint.domain.costs import provenance_cost
from imagemint.domain.models import Job, StoredImage

PUBLIC_FIELDS = (
    "job_id",
    "status",
    "dialect",
    "model",
    "mode",
    "created_at",
    "updated_at",
    "transitions",
    "error",
    "resume_from",
    "provenance_error",
    "webhook",
)
RESULT_FIELDS = (
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


def file_url(base_url: str, image: StoredImage) -> str:
    """A durable URL on our API for an image in our bucket (redirects to a fresh signed URL)."""
    return f"{base_url}/api/files/{image.key.removeprefix('images/')}"


def job_url(base_url: str, job_id: str) -> str:
    """Where the owner follows a job (``GET``), as async answers, job views and webhooks name it."""
    return f"{base_url}/api/jobs/{job_id}"


def public_view(job: Job, base_url: str) -> dict[str, Any]:
    """What the owner sees of a job (``GET /api/jobs/{id}`` and webhook events)."""
    data = job.model_dump()
    body = {k: data.get(k) for k in PUBLIC_FIELDS}
    body["url"] = job_url(base_url, job.job_id)
    body["provenance_cost"] = provenance_cost(job)
    result = data.get("result") or None
    if result:
        body["result"] = {k: result.get(k) for k in RESULT_FIELDS}
        images = [StoredImage.model_validate(img) for img in result.get("images", [])]
        if job.resume_from == "sign":  # not signed yet: never delivered unsigned (a resume signs them)
            images = []
        body["result"]["image_urls"] = [file_url(base_url, img) for img in images]
    return body
