"""What every dialect shares: reading an API Gateway HTTP API (v2) event, auth headers, JSON replies.

Handlers pass the raw v2 event; nothing here depends on how it was routed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from imagemint.errors import InvalidRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from imagemint.safejson import parse_json as parse_json

#: Headers every answer carries (the local HTTP front adds them too).
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}
MAX_ECHO = 64  # characters of a client's value quoted back in an error message


def _epoch_s(ms: Any) -> float | None:
    """``timeEpoch`` (milliseconds) as seconds, or None when absent or not a number."""
    return ms / 1000.0 if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0 else None


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    path_params: dict[str, str]
    body: bytes
    base_url: str
    raw_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: When API Gateway received the request (``requestContext.timeEpoch``, epoch seconds): its 30 s
    #: integration timeout counts from here, cold start included.
    received_at: float | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any], *, public_base_url: str = "") -> HttpRequest:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw)
            except (binascii.Error, ValueError):
                raise InvalidRequest("Body is not valid base64") from None
        else:
            body = raw.encode("utf-8", "surrogatepass")  # lone surrogates stay invalid UTF-8: a 400 later
        ctx = event.get("requestContext") or {}
        http = ctx.get("http") or {}
        base = public_base_url
        if not base:
            domain = ctx.get("domainName") or headers.get("host", "")
            stage = ctx.get("stage") or "$default"
            base = f"https://{domain}" + ("" if stage == "$default" else f"/{stage}")
        return cls(
            method=str(http.get("method") or "GET").upper(),
            path=str(http.get("path") or event.get("rawPath") or "/"),
            headers=headers,
            query=dict(event.get("queryStringParameters") or {}),
            path_params=dict(event.get("pathParameters") or {}),
            body=body,
            base_url=base.rstrip("/"),
            raw_path=str(event.get("rawPath") or ""),
            received_at=_epoch_s(ctx.get("timeEpoch")),
        )

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def check_size(self, limit: int) -> None:
        if len(self.body) > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")

    def require_json(self) -> None:
        """415 unless the body is declared JSON (``application/json``, ``+json``; none is taken as JSON)."""
        ctype = self.content_type
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, not {echo(ctype)}", param="Content-Type"
            )

    def json_object(self, *, allow_empty: bool = False) -> dict[str, Any]:
        self.require_json()
        if not self.body.strip():
            if allow_empty:
                return {}
            raise InvalidRequest("Request body is required")
        data = parse_json(self.body)
        if not isinstance(data, dict):
            raise InvalidRequest("Request body must be a JSON object")
        return data

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization")
        if auth is None:
            return None
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <key>'")
        return token.strip()

    def api_key(
        self, *, x_api_key: bool = True, bearer: bool = True, exactly_one: bool = False
    ) -> str | None:
        """The key from ``x-api-key`` and/or ``Authorization: Bearer``."""
        xk = self.headers.get("x-api-key") if x_api_key else None
        bk = self.bearer() if bearer else None
        if exactly_one and xk and bk:
            raise Unauthorized("Provide exactly one of x-api-key or Authorization: Bearer")
        return xk or bk


# ---- JSON out ----

_UNSAFE = re.compile(r"[<>&\"'\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def echo(value: Any, limit: int = MAX_ECHO) -> str:
    """A client's value, safe to quote in a message: at most ``limit`` characters (then ``…``), with
    markup, quotes, control characters and lone surrogates written as ``\\uXXXX`` (never raw)."""
    text = value if isinstance(value, str) else repr(value)
    cut = len(text) > limit
    text = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text[:limit])
    return text + "…" if cut else text


_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def json_body(data: Any) -> str:
    """Compact JSON; ``<``, ``>`` and ``&`` written as ``\\u`` escapes: no answer carries raw markup."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates a client sent: keep them as \u escapes
        text = json.dumps(data, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def guarded(error_response: Any) -> Any:
    """Run a dialect handler; map any domain error (or crash) through the dialect's one mapper."""
    import functools

    from imagemint.errors import ImagemintError, InternalError
    from imagemint.observability import logger

    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ImagemintError as exc:
                if exc.status >= 500:
                    logger.error("request failed", extra={"code": exc.code, "error": exc.message})
                return error_response(exc)
            except Exception:
                logger.exception("unhandled error")
                return error_response(InternalError("Internal server error"))

        return wrapper

    return deco


def plain_error_response(exc: Any) -> Any:
    """``{"error": "..."}``: the error shape of our own endpoints (files, jobs)."""
    return response(exc.status, {"error": exc.message})


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type="application/json",
        body=json_body(body),
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def retry_headers(exc: Any) -> dict[str, str]:
    """Retry-After (429, 409) and any rate-limit headers the request's admission attached."""
    retry_after = exc.details.get("retry_after") if hasattr(exc, "details") else None
    headers = dict(getattr(exc, "response_headers", None) or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return headers


def credit_details(exc: Any) -> dict[str, Any]:
    """``required`` and ``available`` credits of a 402, for the dialects' error bodies."""
    details = getattr(exc, "details", None) or {}
    if "required" not in details:
        return {}
    return {"required": details["required"], "available": details.get("available")}


# ---- extension fields and async mode, the same in every POST dialect ----

EXTENSION_FIELDS = ("archive", "mint", "webhook_url")


def extensions(data: dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    """``archive`` / ``mint`` (booleans) and ``webhook_url`` from a body; ``form``: multipart text values."""
    out: dict[str, Any] = {}
    for flag in ("archive", "mint"):
        v = data.get(flag)
        if v is None:
            continue
        if form and v in ("true", "false"):
            v = v == "true"
        if not isinstance(v, bool):
            raise InvalidRequest(f"{flag} must be a boolean", param=flag)
        out[flag] = v
    url = data.get("webhook_url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise InvalidRequest("webhook_url must be a URL string", param="webhook_url")
        out["webhook_url"] = url.strip()  # checked against the address rules in service.submit*
    return out


def wants_async(req: HttpRequest) -> bool:
    """RFC 7240 ``Prefer: respond-async`` (among other preferences, any case)."""
    prefs = req.headers.get("prefer", "")
    return any(p.split("=")[0].strip().lower() == "respond-async" for p in prefs.replace(";", ",").split(","))


def prefer_wait(req: HttpRequest, cap: float) -> int | None:
    """RFC 7240 ``Prefer: wait=N`` (seconds) as honoured: at most ``cap``; None when not asked."""
    for pref in req.headers.get("prefer", "").replace(";", ",").split(","):
        name, _, value = pref.partition("=")
        if name.strip().lower() == "wait":
            value = value.strip().strip('"')
            if value.isdigit():
                return min(int(value), int(cap))
    return None


def job_fields(exc: Any) -> dict[str, Any]:
    """``job_id`` and ``url`` of an error about a job that keeps running, for the dialects' error bodies."""
    details = getattr(exc, "details", None) or {}
    if "job_id" not in details:
        return {}
    return {"job_id": details["job_id"], "url": details.get("url")}


def still_running_response(exc: Any, base_url: str, *, wait: int | None, respond_async: bool) -> Any:
    """202 for a synchronous request past its deadline whose client said ``wait`` or ``respond-async``.

    ``exc`` is the service's ``JobStillRunning`` (``details``: ``job_id``, ``url``).
    """
    from imagemint.domain.views import job_url

    job_id = exc.details["job_id"]
    url = exc.details.get("url") or job_url(base_url, job_id)
    applied = ", ".join(
        p for p in ("respond-async" if respond_async else "", f"wait={wait}" if wait is not None else "") if p
    )
    return response(
        202,
        {"job_id": job_id, "status": "RUNNING", "url": url},
        {"Location": url, "Preference-Applied": applied},
    )


def accepted_response(job: Any, base_url: str) -> Any:
    """202 for ``Prefer: respond-async``: where to follow the job (GET the URL, or wait for the webhook)."""
    from imagemint.domain.views import job_url

    url = job_url(base_url, job.job_id)
    return response(
        202,
        {"job_id": job.job_id, "status": job.status, "url": url},
        {"Location": url, "Preference-Applied": "respond-async"},
    )
