"""Domain errors of imagemint.

Every failure the system reports to a client is one of these classes. Each has
a stable ``code`` (carried through job records and Step Functions errors) and
an HTTP ``status``. The dialect modules (``imagemint.api.*``) map them to
their own error shapes in exactly one place each (``error_response``); no code
matches on message text.

Tree::

    ImagemintError
    ├── InvalidRequest (400)            a parameter is missing or wrong (``param`` names it)
    │   └── InputRefused (400)          a reference image / URL was refused (SSRF, size, type)
    ├── Unauthorized (401)              no key, or an unknown / expired / revoked key
    ├── Forbidden (403)                 a valid key that does not own the resource
    ├── InsufficientCredits (402)       ``required`` and ``available`` credits
    ├── NotFound (404)
    ├── Conflict (409)                  e.g. an idempotent request still running
    ├── IdempotencyKeyReused (422)      an Idempotency-Key sent again with another request
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)      the body's Content-Type is not the one the endpoint takes
    ├── RateLimited (429)               ``retry_after`` seconds
    ├── ModerationBlocked (400)         the provider refused the prompt or image
    ├── ProviderError (502)             the provider failed or answered nothing usable
    ├── ProviderTimeout (504)
    ├── ProviderUnavailable (503)       a provider's key cannot be read (``param`` names the parameter)
    ├── JobStillRunning (504)           past a synchronous deadline; ``job_id`` / ``url`` find the job
    ├── ArchiveError (502)              ``archive_failed``: storing on Arweave failed (``details.reason``)
    ├── MintError (502)                 ``mint_failed``: minting the moment failed (``details.reason``)
    │   └── MintPending                 the moment is still queued or being sent: the step is retried
    ├── WebhookFailed (502)             ``webhook_failed``: the receiver did not take the event
    └── InternalError (500)
        ├── WalletError                 the Arweave wallet is missing or unusable (configuration)
        └── PipelineFailed              the state machine did not succeed (its status, error, cause)

Every class lives here, and :data:`BY_CODE` is written out by hand: a function
that imports only this module can rebuild any error from a job record
(:func:`from_dict`), whatever else its process has imported.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ImagemintError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, param: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details
        # HTTP headers for the error response (e.g. rate-limit headers); never stored or serialised.
        self.response_headers: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form, stored on job records and passed between steps."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.param is not None:
            out["param"] = self.param
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r})"


class InvalidRequest(ImagemintError):
    code = "invalid_request"
    status = 400


class InputRefused(InvalidRequest):
    code = "input_refused"


class ModerationBlocked(ImagemintError):
    code = "moderation_blocked"
    status = 400


class Unauthorized(ImagemintError):
    code = "unauthorized"
    status = 401


class InsufficientCredits(ImagemintError):
    code = "insufficient_credits"
    status = 402


class Forbidden(ImagemintError):
    code = "forbidden"
    status = 403


class NotFound(ImagemintError):
    code = "not_found"
    status = 404


class Conflict(ImagemintError):
    code = "conflict"
    status = 409


class IdempotencyKeyReused(ImagemintError):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"
    status = 422


class PayloadTooLarge(ImagemintError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ImagemintError):
    code = "unsupported_media_type"
    status = 415


class RateLimited(ImagemintError):
    code = "rate_limited"
    status = 429


class ProviderError(ImagemintError):
    code = "provider_error"
    status = 502


class ProviderTimeout(ImagemintError):
    code = "provider_timeout"
    status = 504


class ProviderUnavailable(ImagemintError):
    """The provider cannot be used by this deployment now (its key parameter is missing or unreadable)."""

    code = "provider_unavailable"
    status = 503


class JobStillRunning(ImagemintError):
    """The job outlived the synchronous answer's deadline (API Gateway's 30 s): it keeps running.

    ``details``: ``job_id`` and ``url`` (``GET /api/jobs/{id}``), where the result will be.
    """

    code = "job_still_running"
    status = 504


class InternalError(ImagemintError):
    code = "internal_error"
    status = 500


class ArchiveError(ImagemintError):
    """Archiving failed or a read found nothing trustworthy.

    ``details["reason"]`` says which: ``rejected`` (the gateway refused the
    transaction, e.g. an unfunded wallet), ``dropped`` (accepted but not
    found after every attempt), ``unreachable``, ``bad_response``,
    ``chunk_failed``, ``invalid_tags``, ``integrity`` (data or
    header does not match its signature / data_root, or a transaction to
    commit is not the store's wallet's), ``store_failed`` (the local store's
    bucket write failed), ``config``.
    """

    code = "archive_failed"
    status = 502


class MintError(ImagemintError):
    """Minting failed (node unreachable, refused by a guard, reverted, timed out).

    ``details["reason"]`` says which: ``chain_id_not_allowed``,
    ``chain_id_mismatch``, ``base_fee_above_cap``, ``gas_above_cap``,
    ``not_authorized``, ``reverted``, ``token_id_mismatch``, ``contract_mismatch``,
    ``timeout``, ``rpc_error``, ``bad_address``, ``no_contract``, ``config``; through In Process
    (``chain_mode=inprocess``): ``refused`` (a 4xx: nothing was created), ``upstream_error`` (a 5xx),
    ``bad_answer``, ``unsettled`` (a create whose answer was lost and whose moment is not found yet).
    """

    code = "mint_failed"
    status = 502


class MintPending(MintError):
    """The moment is still queued or being sent by another step after its wait: retry the step.

    Its own class name (the Step Functions error name), so that the Mint state retries it apart
    from failures; nothing was signed by this run, and a retry waits again for the same moment.
    Stored, it is a ``mint_failed`` with ``details["reason"] == "pending"`` (the job is resumable).
    """

    def __init__(self, message: str, **details: Any) -> None:
        details.pop("reason", None)
        super().__init__(message, reason="pending", **details)


class WebhookFailed(ImagemintError):
    """The receiver did not take the event (no 2xx answer, or it could not be reached)."""

    code = "webhook_failed"
    status = 502


class WalletError(InternalError):
    """The configured wallet is missing or is not a usable Arweave RSA-4096 JWK (a configuration fault)."""


class PipelineFailed(InternalError):
    """The state machine did not succeed; the job record says why."""

    def __init__(self, status: str, error: str | None, cause: str | None) -> None:
        super().__init__(f"Pipeline {status}: {error or 'unknown error'}")
        self.sfn_status = status
        self.sfn_error = error
        self.sfn_cause = cause


#: Every error code and the class :func:`from_dict` rebuilds for it (a test checks none is missing).
BY_CODE: dict[str, type[ImagemintError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InputRefused,
        ModerationBlocked,
        Unauthorized,
        InsufficientCredits,
        Forbidden,
        NotFound,
        Conflict,
        IdempotencyKeyReused,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        ProviderError,
        ProviderTimeout,
        ProviderUnavailable,
        JobStillRunning,
        ArchiveError,
        MintError,
        WebhookFailed,
        InternalError,
    )
}


def from_dict(data: dict[str, Any] | None) -> ImagemintError:
    """Rebuild a domain error from its ``to_dict`` form (e.g. from a job record)."""
    if not data:
        return InternalError("The job failed without an error record")
    cls = BY_CODE.get(str(data.get("code")), InternalError)
    details = data.get("details") or {}
    return cls(str(data.get("message") or "Internal error"), param=data.get("param"), **details)
