"""The S3 trigger: objects put under ``ingest/`` start the pipeline.

* ``ingest/<account_id>/<name>.(png|jpg|jpeg|webp)`` (or any key with the
  ``x-amz-meta-account-id`` metadata): the image is kept, archived on Arweave
  and minted for that account.
* ``ingest/<account_id>/<name>.json``: a generation request
  ``{"prompt", "model"?, "n"?, "size"?, "aspect_ratio"?, "resolution"?,
  "output_format"?, "archive"?, "mint"?}`` runs the whole generation.

Every object gets a result at ``results/<same key>.json`` (and a job record):
the job's outcome, or an error for a bad object (not an image, too large,
unknown account, bad JSON). Nothing is dropped silently.

Exactly once per object version. The job's id is derived from the bucket, the
key and the object's version (its ``versionId``, else its ``eTag``, else the
notification's ``sequencer``), and the job store refuses an id that exists
(``Conflict``) before anything is charged or started. A second delivery of the
notification, a client's retried upload of the same bytes, or Lambda's retry of
this function finds that job: no execution is started and nothing is charged
again; the result document is rewritten from the job's record (or, while the
job is still open, kept, and written only if none exists yet).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import unquote_plus

from imagemint.domain import service
from imagemint.domain.models import OPEN_STATUSES, GenerationRequest, Job
from imagemint.domain.ports import Deps
from imagemint.errors import (
    Conflict,
    ImagemintError,
    InternalError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from imagemint.observability import logger

MAX_OBJECT_BYTES = 25 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
REQUEST_FIELDS = {
    "prompt",
    "model",
    "n",
    "size",
    "aspect_ratio",
    "resolution",
    "output_format",
    "archive",
    "mint",
    "seed",
    "quality",
}
# uuid5 namespace of ingested objects' job ids (any fixed UUID; changing it re-runs every object).
INGEST_NAMESPACE = uuid.UUID("5f0b7a52-1c7e-4b8e-9a51-6b1f3c0d9e21")
POLL_S = 1.0


def object_job_id(bucket: str, key: str, version: str) -> str:
    """The one job id of an object version (a UUID, as every job id is)."""
    return str(uuid.uuid5(INGEST_NAMESPACE, "\n".join((bucket, key, version))))


def object_version(obj: dict[str, Any]) -> str:
    """What tells one upload of a key from another in an S3 notification's ``object``.

    ``versionId`` on a versioned bucket; otherwise the ``eTag`` (the content's hash for a
    single-part upload: the same bytes put again are the same object), and the ``sequencer``
    only when neither is there.
    """
    for field in ("versionId", "eTag", "sequencer"):
        value = str(obj.get(field) or "").strip('"')
        if value:
            return f"{field}:{value}"
    return ""


def _account_of(deps: Deps, key: str, head: dict[str, Any]) -> str:
    account_id = (head.get("metadata") or {}).get("account-id")
    if not account_id:
        parts = key.split("/")
        account_id = parts[1] if len(parts) >= 3 else ""
    try:
        uuid.UUID(account_id)
    except ValueError:
        raise InvalidRequest(
            "The key or metadata names no account (ingest/<account_id>/<name>)", param="account_id"
        ) from None
    if deps.accounts.get_account(account_id) is None:
        raise NotFound(f"Unknown account {account_id}")
    return account_id


def _request(deps: Deps, key: str, account_id: str) -> GenerationRequest:
    if key.lower().endswith(".json"):
        from imagemint.safejson import parse_json

        data = deps.images.get(key)
        if len(data) > deps.settings.max_body_bytes:  # a request file is a request body
            raise PayloadTooLarge(f"The request file is larger than {deps.settings.max_body_bytes} bytes")
        try:
            body = parse_json(data)  # depth, numbers and strings bounded, as for HTTP bodies
        except InvalidRequest as exc:
            raise InvalidRequest(f"The request file is not valid JSON: {exc.message}") from None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("prompt"), str)
            or not body["prompt"].strip()
        ):
            raise InvalidRequest("The request file needs a JSON object with a prompt", param="prompt")
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            name = unknown[0][:64]
            raise InvalidRequest(f"Unknown field {name!r}", param=name)
        try:
            return GenerationRequest(
                **{"model": deps.settings.default_model, **body}, dialect="ingest", account_id=account_id
            )
        except ValueError as exc:
            raise InvalidRequest(f"Invalid request file: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
    if key.lower().endswith(IMAGE_SUFFIXES):
        return GenerationRequest(
            prompt=key.rsplit("/", 1)[-1],
            model="upload",
            dialect="ingest",
            account_id=account_id,
            archive=True,
            mint=True,
            extra={"source_key": key},
        )
    raise InvalidRequest("Only .png, .jpg, .jpeg, .webp images and .json requests are ingested", param="key")


def _run(deps: Deps, key: str, job_id: str, wait_s: float) -> Job:
    """Check the object and run its job (a bad object raises before any job is made)."""
    head = deps.images.head(key)
    if head is None:
        raise NotFound(f"No object {key}")
    if head["size"] > MAX_OBJECT_BYTES:
        raise PayloadTooLarge(f"The object is larger than {MAX_OBJECT_BYTES} bytes")
    account_id = _account_of(deps, key, head)
    request = _request(deps, key, account_id)
    try:
        service.submit(deps, request, job_id=job_id, wait_s=wait_s)
    except Conflict:
        found = deps.jobs.get(job_id)
        if found is None:
            raise
        logger.info("ingest: the job exists (another delivery)", extra={"key": key, "job_id": job_id})
        return found
    except Exception:
        found = deps.jobs.get(job_id)
        if found is None:
            raise  # refused before the job was made
        return found  # the job's record says what failed
    job = deps.jobs.get(job_id)
    if job is None:
        raise InternalError(f"Job {job_id} vanished")
    return job


def _settled(deps: Deps, job: Job, wait_s: float) -> Job:
    """A found job still open: wait for its outcome while this invocation has time."""
    deadline = time.monotonic() + wait_s
    while job.status in OPEN_STATUSES and time.monotonic() + POLL_S < deadline:
        time.sleep(POLL_S)
        job = deps.jobs.get(job.job_id) or job
    return job


def _document(key: str, job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "status": job.status, "job_id": job.job_id}
    if job.result and job.status not in OPEN_STATUSES:
        out["result"] = job.result
    if job.error:
        out["error"] = job.error
    return out


def ingest_object(
    deps: Deps, key: str, *, bucket: str = "", version: str = "", wait_s: float = 0.0
) -> dict[str, Any]:
    """Run one ingested object version once; write and return its result document."""
    job_id = object_job_id(bucket or deps.settings.bucket, key, version)
    result_key = "results/" + key.removeprefix("ingest/") + ".json"
    out: dict[str, Any] = {"key": key}
    try:
        job = deps.jobs.get(job_id)
        if job is None:
            job = _run(deps, key, job_id, wait_s)
        else:
            logger.info("ingest: already ingested", extra={"key": key, "job_id": job_id})
            job = _settled(deps, job, wait_s)
        out = _document(key, job)
    except ImagemintError as exc:
        out.update(status="FAILED", error=exc.to_dict())
    except Exception:
        logger.exception("ingest failed", extra={"key": key})
        out.update(status="FAILED", error=InternalError("Internal error").to_dict())
    if out["status"] in OPEN_STATUSES and deps.images.head(result_key) is not None:
        # The delivery running the job writes its outcome: an open job never replaces a document.
        logger.info("ingest: job still open, result kept", extra={"key": key, "job_id": job_id})
        return out
    deps.images.put(result_key, json.dumps(out).encode(), "application/json")
    logger.info("ingested", extra={"key": key, "status": out["status"], "result_key": result_key})
    return out


class StillOpen(Exception):
    """A job outlived this invocation's wait: failing the invocation makes Lambda retry it (async
    invocations are retried twice), and the retry finds the job and writes its outcome."""


def handle(
    event: dict[str, Any], deps: Deps, *, wait_s: float = 0.0, retry_open: bool = False
) -> dict[str, Any]:
    """Every ``ingest/`` record of an S3 notification; ``wait_s``: how long a job may be waited for.

    ``retry_open`` (the Lambda handler): raise :class:`StillOpen` when a job is still running after
    the wait, so that Lambda's retry writes its result document.
    """
    results = []
    for record in event.get("Records") or []:
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        key = unquote_plus(obj.get("key", ""))
        if key.startswith("ingest/") and not key.endswith("/"):
            results.append(
                ingest_object(
                    deps,
                    key,
                    bucket=str((s3.get("bucket") or {}).get("name") or ""),
                    version=object_version(obj),
                    wait_s=wait_s,
                )
            )
    open_jobs = [r["job_id"] for r in results if r["status"] in OPEN_STATUSES]
    if retry_open and open_jobs:
        raise StillOpen(f"Jobs still running: {', '.join(open_jobs)}")
    return {"processed": len(results), "results": [{"key": r["key"], "status": r["status"]} for r in results]}
