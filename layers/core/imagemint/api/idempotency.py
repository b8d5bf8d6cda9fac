"""``Idempotency-Key`` on the generation endpoints (Powertools idempotency on DynamoDB).

A client that sends ``Idempotency-Key: <1-255 printable characters>`` with a
request gets, for any later request with the same key on the same account:

* the first response, byte for byte, with ``Idempotent-Replayed: true``,
  while the record lives (``IMAGEMINT_IDEMPOTENCY_EXPIRY_S``, 24 h): nothing is
  generated, charged, archived or minted again;
* 409 (in the dialect's shape, ``Retry-After``) while the first is still running;
* 422 when the key comes back with a different request (method, path or body);
* a fresh run when the first failed: only 2xx answers are kept, so a retry
  after an error (whose credits were refunded) is tried again.

Keys are scoped per account (the record key hashes the account id with the
client's key) and per deployment. The record is held ``IN_PROGRESS_S`` at most
while running (longer than an API function can live), so a crashed run does
not block its retries for a day. Responses larger than ``INLINE_LIMIT`` (a
DynamoDB item holds 400 KB) are kept in the bucket under ``idempotency/`` and
the record points at them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagemint import wiring
from imagemint.errors import Conflict, IdempotencyKeyReused, InternalError, InvalidRequest
from imagemint.observability import logger

if TYPE_CHECKING:
    from imagemint.api.http import HttpRequest
    from imagemint.wiring import Deps

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
IN_PROGRESS_S = 35  # API functions time out at 30 s (API Gateway at 30 s)
INLINE_LIMIT = 256 * 1024
KEY_PREFIX = "imagemint#idempotency"
_KEPT_HEADERS = ("Content-Type", "X-Content-Type-Options")


class _Deadline:
    """What Powertools asks a Lambda context for: how long this run may still hold the record."""

    def __init__(self, seconds: float) -> None:
        self._ms = int(seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self._ms


class _NotKept(Exception):
    """A non-2xx answer: let Powertools drop the record, then return the answer."""

    def __init__(self, response: Any) -> None:
        super().__init__("not kept")
        self.response = response


def client_key(req: HttpRequest) -> str | None:
    """The request's Idempotency-Key, checked; None when it has none."""
    raw = req.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters", param="Idempotency-Key"
        )
    return key


def request_hash(req: HttpRequest) -> str:
    """What must match for a replay: method, path and body (a multipart body without its boundary)."""
    body = req.body
    ctype = req.headers.get("content-type", "")
    if req.content_type == "multipart/form-data" and "boundary=" in ctype:
        boundary = ctype.split("boundary=", 1)[1].split(";", 1)[0].strip().strip('"')
        if boundary:
            body = body.replace(boundary.encode("latin-1", "replace"), b"")
    h = hashlib.sha256()
    for part in (req.method.encode(), req.path.encode(), req.content_type.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _config(deps: Deps) -> Any:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    # A fresh config per call carries this run's deadline; the persistence layer keeps the
    # settings of the first (identical) config it was given: one layer, one configuration.
    return IdempotencyConfig(
        event_key_jmespath="[account, key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=deps.settings.idempotency_expiry_s,
        lambda_context=_Deadline(IN_PROGRESS_S),
    )


def _freeze(deps: Deps, resp: Any) -> dict[str, Any]:
    body = resp.body if isinstance(resp.body, str) else json.dumps(resp.body)
    headers = {k: v for k, v in resp.headers.items() if k in _KEPT_HEADERS and isinstance(v, str)}
    out: dict[str, Any] = {"status": resp.status_code, "headers": headers}
    if len(body.encode("utf-8")) > INLINE_LIMIT:
        ref = f"idempotency/{uuid.uuid4()}.json"
        deps.images.put(ref, body.encode("utf-8"), "application/json")
        out["body_ref"] = ref
    else:
        out["body"] = body
    return out


def _thaw(deps: Deps, stored: dict[str, Any]) -> Any:
    from aws_lambda_powertools.event_handler import Response

    body = stored.get("body")
    if body is None and stored.get("body_ref"):
        body = deps.images.get(str(stored["body_ref"])).decode("utf-8")
    from imagemint.api.http import SECURITY_HEADERS

    headers = {**SECURITY_HEADERS, **(stored.get("headers") or {})}
    headers[REPLAYED_HEADER] = "true"
    return Response(status_code=int(stored["status"]), body=body, headers=headers)


def run(deps: Deps, req: HttpRequest, account_id: str, work: Callable[[], Any]) -> Any:
    """``work()`` at most once per (account, Idempotency-Key); its first 2xx answer for any repeat."""
    key = client_key(req)
    layer = wiring.idempotency_persistence(deps) if key is not None else None
    if key is None or layer is None:
        return work()

    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    live: dict[str, Any] = {}

    def execute(scope: dict[str, Any]) -> dict[str, Any]:
        resp = work()
        live["response"] = resp
        if not 200 <= int(resp.status_code) < 300:
            raise _NotKept(resp)
        return _freeze(deps, resp)

    guarded = idempotent_function(
        execute,
        data_keyword_argument="scope",
        persistence_store=layer,
        config=_config(deps),
        key_prefix=KEY_PREFIX,
    )
    scope = {"account": account_id, "key": key, "request": request_hash(req)}
    try:
        stored = guarded(scope=scope)
    except _NotKept as nk:
        return nk.response
    except IdempotencyAlreadyInProgressError:
        raise Conflict(
            "A request with this Idempotency-Key is still running; retry when it has finished",
            param="Idempotency-Key",
            retry_after=2,
        ) from None
    except IdempotencyValidationError:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a new request",
            param="Idempotency-Key",
        ) from None
    except IdempotencyPersistenceLayerError:
        if "response" in live:  # the work ran; only keeping its answer failed: still answer it
            logger.warning("idempotency record not saved", extra={"account_id": account_id})
            return live["response"]
        raise InternalError("The idempotency store is unavailable") from None
    if "response" in live:
        return live["response"]
    logger.info("idempotent replay", extra={"account_id": account_id})
    return _thaw(deps, stored)
