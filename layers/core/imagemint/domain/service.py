"""The application service: what every API function calls after its codec.

``submit`` validates a :class:`GenerationRequest` against the model registry,
stores uploaded inputs, creates the job record (every accepted request is a
job), runs the state machine and returns the :class:`GenerationResult`, or
raises the domain error the job record names. ``submit_async`` does the same
up to the start of the state machine and returns the job (``Prefer:
respond-async``); ``resume`` runs a PARTIAL job again from where it stopped.

Answering within API Gateway's limit, whatever the provider's speed
-------------------------------------------------------------------
HTTP API gives an integration 30 s; past that the client gets a bare 503 and
nothing to find its job by. The design (issue 11):

* **The job record is the answer, the HTTP call only waits for it.** A
  synchronous request starts its execution on the EXPRESS workflow with
  ``StartExecution`` (not ``StartSyncExecution``: nothing is held open, so an
  execution never depends on the caller staying) and watches the job's status
  (consistent reads of that one attribute, 50 ms growing by 1.5 up to 1 s; the
  whole record is read once, at the end) until Record or
  RecordFailure has written it. It waits at most ``settings.sync_deadline_s``
  (25 s: room for a cold start and rendering under the 30 s), or less when the
  client said ``Prefer: wait=N`` (RFC 7240).
* **Past the deadline** the job runs on under its execution and
  :class:`JobStillRunning` (``job_id``, ``url``) is raised: a client that
  asked for it (``Prefer: wait=N`` or ``respond-async``) gets 202 with the
  job's URL and ``Preference-Applied``; any other gets 504 in its dialect's
  error shape carrying the job id and URL, never API Gateway's bare 503. The
  charge stays only because the result stays retrievable: the job record
  keeps the images, archives and moment, ``GET /api/jobs/{id}`` serves them,
  and a job that fails is refunded by RecordFailure (or the sweeper).
* **Every synchronous path ends within Express's 5 minutes**: the ASL's step
  timeouts and retries are budgeted so (a unit test over the ASL computes
  every path's worst case); async jobs and resumes run on the
  STANDARD workflow built from the same ASL, with no such limit.
* **The legacy endpoint** answers 200 in its seed's shape when the pipeline
  (generate, archive, mint) ends within the deadline: with a 20 s provider it
  does through the local runtime's gateway emulation (an integration test). Its answer carries
  ``jobId``. Not done yet: answering at signing time (Arweave ids and the mint
  transaction hash are final once signed, and the archive and mint steps
  already journal the signed items on the job before sending them), so that
  a slow gateway or chain confirmation in AWS does not push a 20 s
  generation past the deadline; that needs the archive and mint steps split
  into sign and post/confirm, with the post/confirm half on the STANDARD
  workflow.
"""

from __future__ import annotations

import hashlib
import time
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
from imagemint.errors import Conflict, ImagemintError, InternalError, JobStillRunning, from_dict
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
    job_id: str | None = None,
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
    job_id = job_id or new_job_id()  # ingest names its job after the object (one job per object)
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
        credits.refund_failed(deps, job_id)  # before the status a waiting caller stops at
        deps.jobs.update(job_id, status="FAILED", error=error)


#: Job statuses a synchronous caller stops waiting at (the Record / RecordFailure steps write them).
TERMINAL = ("SUCCEEDED", "PARTIAL", "FAILED")
#: How long a caller whose start call failed watches for the execution having started anyway
#: (a call that reached Step Functions and lost its answer) before it declares the job never started.
START_GRACE_S = 2.0
#: Polling the job record: first after this many seconds, then 1.5 times longer each time, at most POLL_MAX_S.
POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0


def submit(
    deps: Deps,
    request: GenerationRequest,
    uploads: Sequence[InputImage] = (),
    mask: InputImage | None = None,
    *,
    base_url: str = "",
    job_id: str | None = None,
    wait_s: float | None = None,
    received_at: float | None = None,
) -> GenerationResult:
    """Run the job and return what it made (or raise the error its record names), within a deadline.

    The execution is started on the synchronous (EXPRESS) workflow and the job record is watched
    until it is done or ``wait_s`` seconds have passed (default and cap for API requests:
    ``settings.sync_deadline_s``, under API Gateway's 30 s). Past the deadline the job keeps running
    and :class:`JobStillRunning` names it (``job_id``, ``url``): the caller answers 202 or an error
    in its dialect's shape, and the result is kept on the job (``GET /api/jobs/{id}``); nothing is
    charged that cannot be retrieved.

    ``received_at`` (epoch seconds): when API Gateway received the request. Its 30 s integration
    timeout counts from there, the function's cold start and admission included, so the wait counts
    from there too; a time that cannot be the gateway's (in the future, or further back than the
    wait itself: clocks of AWS hosts agree to milliseconds) is not trusted and the wait counts from now.

    ``job_id`` (ingest): the job's id, chosen by the caller; the job store refuses an existing one
    (``Conflict``) before anything is charged or started. Ingest passes its own ``wait_s``.
    """
    clock = time.monotonic()
    deadline = clock + wait_budget(deps.settings.sync_deadline_s, wait_s, received_at, time.time())
    job, request = _accept(deps, request, uploads, mask, base_url=base_url, mode="sync", job_id=job_id)
    assert deps.pipeline is not None
    payload = {"job_id": job.job_id, "request": request.model_dump(exclude_none=True), "mode": "sync"}
    try:
        deps.pipeline.run(job.job_id, payload)
    except Exception:
        # The call may have reached Step Functions and lost its answer: the job then moves on its own.
        seen = _wait(deps, job.job_id, min(deadline, time.monotonic() + START_GRACE_S), until_started=True)
        if seen is None or seen.status == "ACCEPTED":
            logger.exception("the pipeline could not be started", extra={"job_id": job.job_id})
            _never_started(deps, job.job_id)
            raise InternalError("The job could not be started; it was not charged") from None
    done = _wait(deps, job.job_id, deadline)
    if done is None or done.status not in TERMINAL:
        raise JobStillRunning(
            "The job is still running; its result will be at the job's URL",
            job_id=job.job_id,
            url=job_url(base_url, job.job_id),
        )
    if done.status == "FAILED":
        raise from_dict(done.error)
    return GenerationResult.model_validate(done.result)


def wait_budget(deadline_s: float, wait_s: float | None, received_at: float | None, now: float) -> float:
    """Seconds a synchronous request may still wait for its job (``submit``'s docstring says why)."""
    budget = deadline_s if wait_s is None else max(0.0, wait_s)
    if received_at is not None:
        spent = now - received_at
        if 0.0 <= spent <= budget:
            budget -= spent
    return budget


def _wait(deps: Deps, job_id: str, deadline: float, *, until_started: bool = False) -> Job | None:
    """The job once it is done (or, ``until_started``, once it left ACCEPTED), or as it is at the deadline."""
    pause = POLL_FIRST_S
    while True:  # polls the status alone; the whole record is read once, at the end
        status = deps.jobs.status(job_id)
        if status is not None and (status in TERMINAL or (until_started and status != "ACCEPTED")):
            return deps.jobs.get(job_id)
        left = deadline - time.monotonic()
        if left <= 0:
            return deps.jobs.get(job_id)
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, POLL_MAX_S)


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


RESUMABLE = ("sign", "archive", "metadata", "mint")


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
    if job.resume_from == "sign":  # swept before its images were signed: sign, then the rest
        payload["resume_from"] = "sign"
    elif not result.get("archive"):
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
