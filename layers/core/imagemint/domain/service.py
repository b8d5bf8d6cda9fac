"""The application service: what every API function calls after its codec.

``submit`` validates a :class:`GenerationRequest` against the model registry,
stores uploaded inputs, creates the job record (every accepted request is a
job), runs the state machine and returns the :class:`GenerationResult`, or
raises the domain error the job record names. ``submit_async`` does the same
up to the start of the state machine and returns the job (``Prefer:
respond-async``); ``resume`` runs a PARTIAL job again from where it stopped.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from imagemint.domain import credits, registry
from imagemint.domain.models import (
    GenerationRequest,
    GenerationResult,
    ImageInput,
    Job,
    StoredImage,
    new_job_id,
)
from imagemint.domain.ports import Deps, InputImage

# The dialects name these service.file_url / service.job_url; they live with the job view.
from imagemint.domain.views import file_url as file_url
from imagemint.domain.views import job_url as job_url
from imagemint.errors import Conflict, ImagemintError, InternalError, from_dict
from imagemint.observability import logger


def validate(deps: Deps, request: GenerationRequest, *, has_refs: bool) -> registry.Resolved:
    """The request checked against its model, resolved to the live model that runs (as of today)."""
    return registry.resolve(
        request,
        aliases=deps.settings.aliases(),
        has_refs=has_refs,
        default_model=deps.settings.default_model,
    )


def _accept(
    deps: Deps,
    request: GenerationRequest,
    uploads: Sequence[InputImage],
    mask: InputImage | None,
    *,
    base_url: str,
    mode: str,
) -> tuple[Job, GenerationRequest]:
    """Validate, keep the inputs, create the job record and charge it: what both modes share."""
    resolved = None
    if not request.extra.get("source_key"):  # ingested images run no provider
        resolved = validate(deps, request, has_refs=bool(request.references or uploads))
    if request.webhook_url:
        from imagemint.domain import webhooks

        request = request.model_copy(
            update={"webhook_url": webhooks.check_url(deps.settings, request.webhook_url)}
        )
    job_id = new_job_id()
    refs = list(request.references)
    for i, up in enumerate(uploads):
        key = f"inputs/{job_id}/{i}"
        deps.images.put(key, up.data, up.media_type)
        refs.append(ImageInput(s3_key=key, media_type=up.media_type, name=up.name))
    mask_input = request.mask
    if mask is not None:
        key = f"inputs/{job_id}/mask"
        deps.images.put(key, mask.data, mask.media_type)
        mask_input = ImageInput(s3_key=key, media_type=mask.media_type, name=mask.name)
    request = request.model_copy(update={"references": refs, "mask": mask_input})

    job = Job(
        job_id=job_id,
        account_id=request.account_id,
        dialect=request.dialect,
        model=request.model,
        request=request.model_dump(exclude_none=True),
        base_url=base_url or None,
        mode="async" if mode == "async" else "sync",
    )
    deps.jobs.create(job)
    logger.info(
        "job accepted",
        extra={"job_id": job_id, "dialect": request.dialect, "model": request.model, "mode": job.mode},
    )
    if deps.pipeline is None:
        raise InternalError("No pipeline configured")
    if resolved is not None:
        try:
            credits.charge(deps, job, credits.quote(resolved.price_per_image, request.n))
        except ImagemintError as exc:
            deps.jobs.update(job_id, status="FAILED", error=exc.to_dict())
            raise
    return job, request


def _never_started(deps: Deps, job_id: str) -> None:
    failed = deps.jobs.get(job_id)
    if failed is not None and failed.status == "ACCEPTED":  # the pipeline never started
        error = InternalError("The pipeline did not run").to_dict()
        deps.jobs.update(job_id, status="FAILED", error=error)
        credits.refund_failed(deps, job_id)


def submit(
    deps: Deps,
    request: GenerationRequest,
    uploads: Sequence[InputImage] = (),
    mask: InputImage | None = None,
    *,
    base_url: str = "",
) -> GenerationResult:
    """Run the job to its end and return what it made (or raise the error its record names)."""
    job, request = _accept(deps, request, uploads, mask, base_url=base_url, mode="sync")
    assert deps.pipeline is not None
    try:
        out = deps.pipeline.run_sync(job.job_id, request)
    except Exception:
        failed = deps.jobs.get(job.job_id)
        if failed is not None and failed.error:
            raise from_dict(failed.error) from None
        _never_started(deps, job.job_id)
        raise
    return GenerationResult.model_validate(out)


def submit_async(
    deps: Deps,
    request: GenerationRequest,
    uploads: Sequence[InputImage] = (),
    mask: InputImage | None = None,
    *,
    base_url: str = "",
) -> Job:
    """``Prefer: respond-async``: start the job and return its record at once (the caller answers 202)."""
    job, request = _accept(deps, request, uploads, mask, base_url=base_url, mode="async")
    assert deps.pipeline is not None
    payload = {"job_id": job.job_id, "request": request.model_dump(exclude_none=True), "mode": "async"}
    try:
        arn = deps.pipeline.start(job.job_id, payload)
    except Exception:
        logger.exception("the pipeline could not be started", extra={"job_id": job.job_id})
        _never_started(deps, job.job_id)
        raise InternalError("The job could not be started; it was not charged") from None
    return deps.jobs.update(job.job_id, execution_arn=arn) if arn else job


RESUMABLE = ("archive", "metadata", "mint")


def resume(deps: Deps, job: Job) -> Job:
    """Run a PARTIAL job again from ``resume_from`` with the images it has (no generation, no charge)."""
    if deps.pipeline is None:
        raise InternalError("No pipeline configured")
    if job.resume_from not in RESUMABLE or not job.result:
        raise Conflict(f"Job is {job.status}; only a PARTIAL job can be resumed")
    result = dict(job.result)
    payload: dict[str, Any] = {
        "job_id": job.job_id,
        "request": job.request,
        "result": result,
        "mode": "async",
    }
    # Start where the record says the chain broke: what exists is reused, never made again.
    if not result.get("archive"):
        payload["resume_from"] = "archive"
    elif not result.get("metadata_archive"):
        payload.update(resume_from="metadata", archives=result["archive"])
    else:
        payload.update(resume_from="mint", archives=result["archive"], metadata=result["metadata_archive"])
    # One resume at a time: only the caller that moves the job out of PARTIAL starts an execution.
    deps.jobs.update(
        job.job_id, expect_status="PARTIAL", status="RUNNING", resumed_from=payload["resume_from"]
    )
    try:
        arn = deps.pipeline.start(job.job_id, payload, name=f"{job.job_id}-resume-{uuid.uuid4().hex[:8]}")
    except Exception:
        logger.exception("the resume could not be started", extra={"job_id": job.job_id})
        deps.jobs.update(job.job_id, status="PARTIAL")
        raise InternalError("The job could not be resumed now; try again") from None
    return deps.jobs.update(job.job_id, execution_arn=arn) if arn else (deps.jobs.get(job.job_id) or job)


def image_bytes(deps: Deps, image: StoredImage) -> bytes:
    return deps.images.get(image.key)


def signed_url(deps: Deps, image: StoredImage) -> str:
    return deps.images.url(image.key, deps.settings.url_ttl_s)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
