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
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import unquote_plus

from imagemint.domain import service
from imagemint.domain.models import GenerationRequest
from imagemint.domain.ports import Deps
from imagemint.errors import ImagemintError, InternalError, InvalidRequest, NotFound, PayloadTooLarge
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
        try:
            body = json.loads(deps.images.get(key))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidRequest("The request file is not valid JSON") from None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("prompt"), str)
            or not body["prompt"].strip()
        ):
            raise InvalidRequest("The request file needs a JSON object with a prompt", param="prompt")
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            raise InvalidRequest(f"Unknown field '{unknown[0]}'", param=unknown[0])
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


def ingest_object(deps: Deps, key: str) -> dict[str, Any]:
    """Run one ingested object; write and return its result document."""
    out: dict[str, Any] = {"key": key}
    try:
        head = deps.images.head(key)
        if head is None:
            raise NotFound(f"No object {key}")
        if head["size"] > MAX_OBJECT_BYTES:
            raise PayloadTooLarge(f"The object is larger than {MAX_OBJECT_BYTES} bytes")
        account_id = _account_of(deps, key, head)
        request = _request(deps, key, account_id)
        result = service.submit(deps, request)
        job = deps.jobs.get(result.job_id)
        out.update(
            status=job.status if job else "SUCCEEDED",
            job_id=result.job_id,
            result=result.model_dump(exclude_none=True),
        )
    except ImagemintError as exc:
        out.update(status="FAILED", error=exc.to_dict())
    except Exception:
        logger.exception("ingest failed", extra={"key": key})
        out.update(status="FAILED", error=InternalError("Internal error").to_dict())
    result_key = "results/" + key.removeprefix("ingest/") + ".json"
    deps.images.put(result_key, json.dumps(out).encode(), "application/json")
    logger.info("ingested", extra={"key": key, "status": out["status"], "result_key": result_key})
    return out


def handle(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    results = []
    for record in event.get("Records") or []:
        key = unquote_plus(record.get("s3", {}).get("object", {}).get("key", ""))
        if key.startswith("ingest/") and not key.endswith("/"):
            results.append(ingest_object(deps, key))
    return {"processed": len(results), "results": [{"key": r["key"], "status": r["status"]} for r in results]}
