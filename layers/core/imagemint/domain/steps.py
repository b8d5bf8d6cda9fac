"""The state machine's task logic: generate, record, record failure.

Each function takes the step's input (a dict, as Step Functions passes it) and
returns its output. ``step_handler`` turns a domain error into a Lambda error
whose ``errorType`` is the domain class name (so ASL ``Retry``/``Catch`` can
match it) and whose message is the error's JSON (so the failure step can
record exactly what failed).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imagemint.domain import credits, registry
from imagemint.domain.costs import provenance_cost
from imagemint.domain.models import (
    EXTENSIONS,
    GenerationRequest,
    GenerationResult,
    ImageInput,
    StoredImage,
    Usage,
    recorded_moment,
)
from imagemint.domain.ports import Deps, InputImage, ProviderCall, ProviderResult
from imagemint.domain.service import sha256_hex, validate
from imagemint.errors import ImagemintError, InternalError, from_dict
from imagemint.observability import logger

_STEP_ERRORS: dict[str, type[Exception]] = {}
# GenerationRequest.extra keys passed on to the provider (OpenAI's end-user identifiers).
PASSED_THROUGH = ("user", "safety_identifier")


def _step_error(exc: ImagemintError) -> Exception:
    name = type(exc).__name__
    cls = _STEP_ERRORS.get(name)
    if cls is None:
        cls = _STEP_ERRORS[name] = type(name, (Exception,), {"__module__": "imagemint.domain.steps"})
    return cls(json.dumps(exc.to_dict()))


#: The event the state machine's ``GenerateAndWarm`` sends a later step while Generate runs.
WARM_EVENT = {"warm": True}


def step_handler(fn: Callable[..., Any] | None = None, *, warm: Callable[[], Any] | None = None) -> Any:
    """Wrap a step's handler (``@step_handler`` or ``@step_handler(warm=...)``).

    A warm-up event (:data:`WARM_EVENT`) runs no step: it answers ``{"warm": true}`` once the
    function's module is imported (the environment initialised) and ``warm``, when given, has
    built what the step's first real call would build (its clients, keys, minter). A warm-up that
    fails is logged and answered with ``"error"``: it never fails anything, and the real call
    builds it again.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(event: dict[str, Any], context: Any = None) -> Any:
            if event == WARM_EVENT:
                return _warm_up(warm)
            try:
                return fn(event, context)
            except ImagemintError as exc:
                raise _step_error(exc) from None

        return wrapper

    return decorate if fn is None else decorate(fn)


def _warm_up(warm: Callable[[], Any] | None) -> dict[str, Any]:
    if warm is not None:
        try:
            warm()
        except Exception as exc:  # noqa: BLE001 - best effort: the real call meets (and reports) it
            logger.warning("warm-up failed", extra={"error": type(exc).__name__})
            return {**WARM_EVENT, "error": type(exc).__name__}
    return dict(WARM_EVENT)


def error_from_step(error: dict[str, Any] | None) -> dict[str, Any]:
    """The domain error dict from a Catch's ``{"Error", "Cause"}``."""
    if not error:
        return InternalError("Unknown failure").to_dict()
    name = str(error.get("Error") or "")
    cause = error.get("Cause")
    message = None
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            message = parsed.get("errorMessage")
    if isinstance(message, str):
        try:
            data = json.loads(message)
            if isinstance(data, dict) and "code" in data:
                return from_dict(data).to_dict()
        except json.JSONDecodeError:
            pass
    if name.startswith("States.") or name.startswith("Lambda."):
        return InternalError(f"Pipeline step failed ({name})").to_dict()
    return InternalError(f"Pipeline step failed ({name or 'unknown error'})").to_dict()


def load_input(deps: Deps, item: ImageInput) -> InputImage:
    if item.s3_key:
        return InputImage(deps.images.get(item.s3_key), item.media_type or "image/png", item.name)
    if item.url:
        from imagemint.adapters.net.fetch import fetch_image

        return fetch_image(
            item.url,
            name=item.name,
            max_bytes=deps.settings.max_input_image_bytes,
            timeout=deps.settings.fetch_timeout_s,
        )
    raise InternalError(f"Input {item.name} has no source")


def _calls(n: int, per_call: int) -> list[int]:
    out = []
    while n > 0:
        out.append(min(n, per_call))
        n -= out[-1]
    return out


def generate(deps: Deps, job_id: str, request: GenerationRequest) -> GenerationResult:
    """Run the provider for ``request`` (or take the ingested image) and keep every image in our bucket."""
    deps.jobs.update(job_id, status="RUNNING")
    if request.extra.get("source_key"):
        result = _ingested(deps, job_id, request)
    else:
        result = _generate(deps, job_id, request)
    # On the job at once: if the execution dies after this, the images are still found from the record.
    deps.jobs.update(job_id, result=result.model_dump(exclude_none=True))
    return result


def _generate(deps: Deps, job_id: str, request: GenerationRequest) -> GenerationResult:
    from imagemint.wiring import provider_for

    resolved = validate(deps, request, has_refs=bool(request.references))
    refs = tuple(load_input(deps, r) for r in request.references)
    mask = load_input(deps, request.mask) if request.mask else None
    provider, warnings = provider_for(resolved.spec, deps.settings)
    warnings = [*resolved.warnings, *warnings]
    options = registry.call_options(request, resolved)

    def one(k: int, index: int) -> ProviderResult:
        seed = None if request.seed is None else request.seed + index
        call = ProviderCall(
            prompt=request.prompt,
            provider_model=resolved.spec.provider_model,
            n=k,
            width=resolved.width,
            height=resolved.height,
            output_format=request.output_format,
            size=resolved.provider_size,
            aspect_ratio=resolved.aspect_ratio,
            resolution=resolved.resolution,
            seed=seed,
            references=refs,
            mask=mask,
            output_compression=request.output_compression,
            moderation=request.moderation,
            extra={k: request.extra[k] for k in PASSED_THROUGH if request.extra.get(k)},
            **options,
        )
        return provider.generate(call)

    counts = _calls(request.n, resolved.spec.max_per_call)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    results: list[ProviderResult | ImagemintError] = []
    if len(counts) == 1:
        results.append(one(counts[0], 0))
    else:
        with ThreadPoolExecutor(max_workers=min(4, len(counts))) as pool:
            futures = [pool.submit(one, k, s) for k, s in zip(counts, starts, strict=True)]
            for f in futures:
                try:
                    results.append(f.result())
                except ImagemintError as exc:
                    results.append(exc)
    ok = [r for r in results if isinstance(r, ProviderResult)]
    failed = [r for r in results if isinstance(r, ImagemintError)]
    if not ok:
        raise failed[0]
    if failed:
        missing = sum(k for k, r in zip(counts, results, strict=True) if isinstance(r, ImagemintError))
        warnings.append(f"{missing} of {request.n} images could not be generated: {failed[0].message}")

    stored: list[StoredImage] = []
    usage = Usage()
    image_tokens = 0
    meta: dict[str, Any] = {}
    for r in ok:
        warnings.extend(w for w in r.warnings if w not in warnings)
        usage.prompt_tokens += r.prompt_tokens
        usage.completion_tokens += r.completion_tokens
        image_tokens += r.input_image_tokens
        meta.update(r.metadata)
        for img in r.images:
            i = len(stored)
            ext = EXTENSIONS.get(img.media_type, "bin")
            key = f"images/{job_id}/{i}.{ext}"
            deps.images.put(key, img.data, img.media_type, {"job-id": job_id})
            stored.append(
                StoredImage(
                    key=key,
                    media_type=img.media_type,
                    width=img.width,
                    height=img.height,
                    bytes=len(img.data),
                    sha256=sha256_hex(img.data),
                    revised_prompt=img.revised_prompt,
                )
            )
    if not stored:
        from imagemint.errors import ProviderError

        raise ProviderError("The provider returned no image")
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    usage.images = len(stored)
    logger.info("generated", extra={"job_id": job_id, "images": len(stored), "model": resolved.spec.name})
    return GenerationResult(
        job_id=job_id,
        images=stored,
        model=resolved.spec.name,
        requested_model=request.model,
        provider=str(meta.get("provider", provider.name)),
        size=f"{stored[0].width}x{stored[0].height}",
        usage=usage,
        warnings=warnings,
        cost_usd=registry.cost_usd(
            resolved,
            len(stored),
            text_tokens=usage.prompt_tokens - image_tokens,
            image_tokens=image_tokens,
            output_tokens=usage.completion_tokens,
        ),
        provider_metadata=meta,
    )


def _ingested(deps: Deps, job_id: str, request: GenerationRequest) -> GenerationResult:
    """An image dropped into ``ingest/``: checked and kept like a generated one (no provider runs).

    The format and size come from the file's header (magic bytes, then the PNG
    IHDR / JPEG SOF / WebP VP8 header), read without an image library: the
    functions that run this attach the core layer only.
    """
    from imagemint.adapters.net.sniff import bounds_problem, image_dimensions, image_info, sniff_media_type
    from imagemint.errors import InputRefused

    source = str(request.extra["source_key"])
    data = deps.images.get(source)
    sniffed = sniff_media_type(data)
    size = image_dimensions(data) if sniffed else None
    if sniffed is None or size is None:
        raise InputRefused(f"{source} is not a PNG, JPEG or WebP image", param="object")
    problem = bounds_problem(image_info(data))  # the same header bounds as every other input image
    if problem is not None:
        raise InputRefused(f"{source} is refused because {problem}", param="object")
    if sniffed not in EXTENSIONS:
        fmt = sniffed.removeprefix("image/")
        raise InputRefused(f"{source} is a {fmt} image; PNG, JPEG or WebP expected", param="object")
    media_type = sniffed
    width, height = size
    key = f"images/{job_id}/0.{EXTENSIONS[media_type]}"
    deps.images.put(key, data, media_type, {"job-id": job_id})
    image = StoredImage(
        key=key, media_type=media_type, width=width, height=height, bytes=len(data), sha256=sha256_hex(data)
    )
    return GenerationResult(
        job_id=job_id,
        images=[image],
        model="upload",
        requested_model="upload",
        provider="upload",
        size=f"{width}x{height}",
        usage=Usage(images=1),
    )


def _token_cost(res: GenerationResult) -> float | None:
    """The real cost when the provider reported token usage (what the charge is trued down to)."""
    return res.cost_usd if res.usage.completion_tokens > 0 else None


def record(deps: Deps, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    res = GenerationResult.model_validate(result)
    credits.settle(deps, job_id, delivered=len(res.images), actual_usd=_token_cost(res))  # once
    deps.jobs.update(job_id, status="SUCCEEDED", result=res.model_dump(exclude_none=True))
    return res.model_dump(exclude_none=True)


def record_failure(deps: Deps, job_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
    err = error_from_step(error)
    # The charge goes back before the job reads FAILED: a client that sees the failure (the sync
    # API answers as soon as the record says so) must already see its credits returned.
    credits.refund_failed(deps, job_id)  # once, even when this step runs twice
    deps.jobs.update(job_id, status="FAILED", error=err)
    logger.warning("job failed", extra={"job_id": job_id, "code": err.get("code")})
    return {"job_id": job_id, "error": err}


def _failure_note(error: dict[str, Any] | None, what: str) -> str:
    err = error_from_step(error)
    return f"{what} failed: {err.get('message')}"


RESUME_NOTE = "; the image is kept and the job can be resumed (POST /api/jobs/{id}/resume)"


def record_state(deps: Deps, state: dict[str, Any]) -> dict[str, Any]:
    """The Record step after provenance: keep exactly what succeeded, say what failed."""
    job_id = state["job_id"]
    request = state.get("request") or {}
    res = GenerationResult.model_validate(state["result"])
    # A resumed job carries its earlier record: its old provenance note is replaced by this run's.
    warnings = [w for w in res.warnings if not w.endswith(RESUME_NOTE)]
    missing: list[str] = []
    if deps.settings.sign_mode != "off" and any(not img.credentials for img in res.images):
        # Only a swept job gets here (a failed Sign step fails the job): its images are not signed,
        # so nothing delivers them (views) until a resume signs them first.
        missing.append("sign")
    # The job as provenance left it (read once: its recorded moment and what provenance cost).
    job = deps.jobs.get(job_id) if request.get("archive") or request.get("mint") else None
    archives = state.get("archives")
    if request.get("archive"):
        if archives:
            res.archive = archives
        else:
            missing.append("archive")
        if state.get("metadata"):
            res.metadata_archive = state["metadata"]
        elif archives:
            missing.append("metadata")
    if request.get("mint"):
        # The Mint step's moment; else one a batch sender recorded on the job after this job's step gave
        # up waiting for it (MintPending past its retries): minted all the same.
        moment = state.get("moment") or recorded_moment(job)
        if moment:
            res.moment = moment
        else:
            missing.append("mint")
    failure = state.get("provenance_error")
    if missing:
        stage = missing[0]
        warnings.append(
            _failure_note(
                failure,
                {
                    "sign": "Signing the Content Credentials",
                    "archive": "Arweave storage",
                    "metadata": "Arweave metadata storage",
                    "mint": "Minting the moment",
                }[stage],
            )
            + RESUME_NOTE
        )
    res.warnings = warnings
    if request.get("archive") or request.get("mint"):  # what provenance cost (USD estimate; issue 14)
        cost = provenance_cost(job)
        res.provenance_cost_usd = cost["usd_estimate"] if cost else None
    status = "PARTIAL" if missing else "SUCCEEDED"
    extra: dict[str, Any] = {"resume_from": None, "provenance_error": None}
    if missing:
        extra["resume_from"] = missing[0]
        extra["provenance_error"] = error_from_step(failure)
    # Settle first (once, however often this step runs), then the terminal status: whoever reads
    # the status also reads the balance it leaves.
    credits.settle(deps, job_id, delivered=len(res.images), actual_usd=_token_cost(res))
    after = deps.jobs.update(job_id, status=status, result=res.model_dump(exclude_none=True), **extra)
    if extra["resume_from"] == "mint" and recorded_moment(after):
        # Its moment was recorded between the look above and this write: the sender saw the job still
        # open, so nobody else completes it (a sender completes what it finds PARTIAL; one of the two
        # writes always sees the other). The Notify state follows this one.
        completed = complete_late_moment(deps, job_id, notify=False)
        if completed is not None:
            return completed
    return res.model_dump(exclude_none=True)


def complete_late_moment(deps: Deps, job_id: str, *, notify: bool = True) -> dict[str, Any] | None:
    """A PARTIAL job that waits only for its moment, now recorded on it: SUCCEEDED, with one webhook attempt.

    Under load a job's Mint step can give up waiting (``MintPending`` past its retries) while its
    moment is still queued or being sent; the job is then recorded PARTIAL (``resume_from`` mint).
    The batch sender that later mints the moment records it on the job and calls this, as does the
    Record step when the moment arrived while it wrote PARTIAL. The job is claimed first
    (PARTIAL -> RUNNING, conditional), so a resume, a second sender or a second call finds it taken;
    then the Record step's own logic runs on what the job holds. Nothing is charged again: the
    PARTIAL record settled the charge already (``credits.settle`` runs once). The result it recorded;
    None when the job is not such a job, or someone else has it.
    """
    from imagemint.errors import Conflict

    job = deps.jobs.get(job_id)
    moment = recorded_moment(job)
    if job is None or job.status != "PARTIAL" or job.resume_from != "mint" or not moment or not job.result:
        return None
    result = job.result
    if not result.get("archive") or not result.get("metadata_archive"):
        return None
    try:
        deps.jobs.update(job_id, expect_status="PARTIAL", status="RUNNING", resumed_from="late_moment")
    except Conflict:
        return None  # a resume or another completion has it
    state = {
        "job_id": job_id,
        "request": job.request,
        "result": result,
        "archives": result["archive"],
        "metadata": result["metadata_archive"],
        "moment": moment,
    }
    recorded = record_state(deps, state)
    logger.info("a PARTIAL job's moment was minted after all: SUCCEEDED", extra={"job_id": job_id})
    if notify and (job.request or {}).get("webhook_url"):
        from imagemint.domain import webhooks

        try:
            webhooks.deliver(deps, job_id)  # one attempt, as the sweeper makes; recorded on the job
        except ImagemintError:
            pass
    return recorded
