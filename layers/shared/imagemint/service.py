"""The application service: what every API function calls after its codec.

``submit`` validates a :class:`GenerationRequest` against the model registry,
stores uploaded inputs, creates the job record (every accepted request is a
job), runs the state machine and returns the :class:`GenerationResult`, or
raises the domain error the job record names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from imagemint import credits, registry
from imagemint.deps import Deps
from imagemint.errors import ImagemintError, InternalError, from_dict
from imagemint.models import GenerationRequest, GenerationResult, ImageInput, Job, StoredImage, new_job_id
from imagemint.observability import logger
from imagemint.ports import InputImage


def validate(deps: Deps, request: GenerationRequest, *, has_refs: bool) -> registry.Resolved:
    return registry.resolve(request, aliases=_aliases(deps), has_refs=has_refs)


def _aliases(deps: Deps) -> dict[str, str]:
    configured = deps.settings.aliases()
    return {**registry.DEFAULT_ALIASES, **configured}


def submit(
    deps: Deps,
    request: GenerationRequest,
    uploads: Sequence[InputImage] = (),
    mask: InputImage | None = None,
) -> GenerationResult:
    resolved = None
    if not request.extra.get("source_key"):  # ingested images run no provider
        resolved = validate(deps, request, has_refs=bool(request.references or uploads))
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
    )
    deps.jobs.create(job)
    logger.info("job accepted", extra={"job_id": job_id, "dialect": request.dialect, "model": request.model})
    if deps.pipeline is None:
        raise InternalError("No pipeline configured")
    if resolved is not None:
        try:
            credits.charge(deps, job, credits.quote(resolved.price_per_image, request.n))
        except ImagemintError as exc:
            deps.jobs.update(job_id, status="FAILED", error=exc.to_dict())
            raise
    try:
        out = deps.pipeline.run_sync(job_id, request)
    except Exception:
        failed = deps.jobs.get(job_id)
        if failed is not None and failed.error:
            raise from_dict(failed.error) from None
        if failed is not None and failed.status == "ACCEPTED":  # the pipeline never started
            error = InternalError("The pipeline did not run").to_dict()
            deps.jobs.update(job_id, status="FAILED", error=error)
            credits.refund_failed(deps, job_id)
        raise
    return GenerationResult.model_validate(out)


def image_bytes(deps: Deps, image: StoredImage) -> bytes:
    return deps.images.get(image.key)


def file_url(base_url: str, image: StoredImage) -> str:
    """A durable URL on our API for an image in our bucket (redirects to a fresh signed URL)."""
    return f"{base_url}/api/files/{image.key.removeprefix('images/')}"


def signed_url(deps: Deps, image: StoredImage) -> str:
    return deps.images.url(image.key, deps.settings.url_ttl_s)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
