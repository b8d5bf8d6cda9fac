"""Webhooks: a job's outcome POSTed, signed, to the ``webhook_url`` its request named.

The format is the Standard Webhooks specification (standardwebhooks.com), so
receivers can verify with its libraries or the few lines of :func:`verify`:

* ``webhook-id``: ``evt_<job id>_<status>``. The same for every attempt of one
  event: the receiver's idempotency key (a job resumed later sends a new event
  only when its status changes).
* ``webhook-timestamp``: Unix seconds of this attempt.
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``.
* body: ``{"type": "job.succeeded" | "job.partial" | "job.failed", "timestamp",
  "data": <the job as GET /api/jobs/{id} shows it>}``.

The signing secret is per account and derived, not stored:
``whsec_`` + base64(HMAC-SHA256(deployment key-hash secret, "webhook:<account id>")).
``imagemint accounts show`` prints it.

Delivery goes through :func:`imagemint.adapters.net.fetch.post`: the address rules of every
server-side request (no private, loopback, link-local or metadata address,
checked when the request arrives and again at delivery, the connection pinned
to the checked address), no redirects, one timeout. A 2xx answer is a
delivery; anything else raises :class:`WebhookFailed`, which the state
machine retries with backoff and jitter (``NotifyAsync``: up to 8 attempts
within about 3 minutes; a synchronous
request gets one attempt, so its HTTP answer is not held up). Every attempt is
recorded on the job under ``webhook``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagemint import __version__
from imagemint.domain import auth
from imagemint.domain.views import public_view
from imagemint.errors import InputRefused, InvalidRequest, WebhookFailed
from imagemint.observability import logger

if TYPE_CHECKING:
    from imagemint.adapters.net.fetch import Opener, Resolver
    from imagemint.domain.ports import Deps
    from imagemint.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every signing secret, not a secret
TOLERANCE_S = 5 * 60
MAX_URL_CHARS = 2048
EVENT_TYPES = {"SUCCEEDED": "job.succeeded", "PARTIAL": "job.partial", "FAILED": "job.failed"}


def secret_for(settings: Settings, account_id: str) -> str:
    raw = auth.derived_secret(settings, f"webhook:{account_id}")
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """What a receiver does: the timestamp is recent and one ``v1`` signature matches."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(ts), body)
    return any(hmac.compare_digest(expected, s) for s in h.get("webhook-signature", "").split())


def check_url(
    settings: Settings, url: Any, *, resolver: Resolver | None = None, param: str = "webhook_url"
) -> str:
    """A request's ``webhook_url``: https (http only to loopback where allowed), public address."""
    from imagemint.adapters.net.fetch import check_url as check_address_of

    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest(f"{param} must be a URL string", param=param)
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"{param} must be at most {MAX_URL_CHARS} characters", param=param)
    loopback = settings.webhook_allow_loopback
    if not url.lower().startswith("https://") and not (loopback and url.lower().startswith("http://")):
        raise InputRefused(f"{param} must be an https URL", param=param)
    check_address_of(url, name=param, resolver=resolver, allow_loopback=loopback)
    return url


def event_for(job_view: dict[str, Any]) -> tuple[str, bytes]:
    status = str(job_view.get("status"))
    msg_id = f"evt_{job_view['job_id']}_{status.lower()}"
    body = {
        "type": EVENT_TYPES.get(status, "job.updated"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": job_view,
    }
    return msg_id, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(
    deps: Deps, job_id: str, *, resolver: Resolver | None = None, opener: Opener | None = None
) -> dict[str, Any]:
    """One delivery attempt of the job's outcome; :class:`WebhookFailed` unless a 2xx came back."""
    from imagemint.adapters.net import fetch

    job = deps.jobs.get(job_id)
    if job is None:
        raise InvalidRequest(f"Job {job_id} not found")
    url = (job.request or {}).get("webhook_url")
    if not url:
        return {"skipped": True}
    view = public_view(job, job.base_url or deps.settings.public_base_url)
    msg_id, body = event_for(view)
    previous = job.webhook or {}
    attempts = (previous.get("attempts", 0) if previous.get("event_id") == msg_id else 0) + 1
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"imagemint-webhooks/{__version__}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret_for(deps.settings, job.account_id), msg_id, ts, body),
    }
    record: dict[str, Any] = {"url": url, "event_id": msg_id, "attempts": attempts, "last_attempt_at": ts}
    try:
        status, _ = fetch.post(
            url,
            body,
            headers,
            name="webhook_url",
            timeout=deps.settings.webhook_timeout_s,
            resolver=resolver,
            opener=opener,
            allow_loopback=deps.settings.webhook_allow_loopback,
        )
    except InputRefused as exc:
        status, error = 0, exc.message
    else:
        error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    if error is None:
        record.update(delivered=True, status_code=status, delivered_at=ts)
        deps.jobs.update(job_id, webhook=record)
        logger.info("webhook delivered", extra={"job_id": job_id, "attempts": attempts})
        return record
    record.update(delivered=False, status_code=status or None, last_error=error)
    deps.jobs.update(job_id, webhook=record)
    logger.warning("webhook not delivered", extra={"job_id": job_id, "attempts": attempts, "error": error})
    raise WebhookFailed(f"Webhook delivery failed: {error}", param="webhook_url")
