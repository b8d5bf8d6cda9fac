"""Ports: the small interfaces behind which everything outside the domain sits.

Adapters implement them (``imagemint.adapters.*``, ``imagemint.providers.*``);
unit tests use the in-memory implementations in ``imagemint.adapters.memory``.
Concrete adapters take their client or session as a constructor argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from imagemint.models import Account, ApiKeyRecord, GenerationRequest, Job, LedgerEntry


@dataclass(frozen=True)
class InputImage:
    """A reference / edit image after it was fetched and checked."""

    data: bytes
    media_type: str
    name: str = "image"


@dataclass(frozen=True)
class ProviderCall:
    """One call to one provider, after the model registry resolved the request."""

    prompt: str
    provider_model: str
    n: int
    width: int
    height: int
    output_format: str = "png"
    size: str | None = None  # the provider's own size string where it has one
    aspect_ratio: str | None = None
    resolution: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    seed: int | None = None
    references: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderImage:
    data: bytes
    media_type: str
    width: int
    height: int
    revised_prompt: str | None = None


@dataclass
class ProviderResult:
    images: list[ProviderImage]
    model: str  # the provider model that ran
    prompt_tokens: int = 0
    completion_tokens: int = 0
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class ImageProvider(Protocol):
    name: str

    def generate(self, call: ProviderCall) -> ProviderResult:
        """Generate ``call.n`` images (``n`` never exceeds the model's per-call limit).

        Raises domain errors (``ModerationBlocked``, ``ProviderError``,
        ``ProviderTimeout``, ``RateLimited``, ``InvalidRequest``) only.
        """
        ...


class ImageStore(Protocol):
    def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None: ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> dict[str, Any] | None:
        """Object size, content type and user metadata, or None when absent."""
        ...

    def url(self, key: str, expires_in: int) -> str:
        """A URL a client can fetch the object from for ``expires_in`` seconds."""
        ...


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...

    def get(self, job_id: str) -> Job | None: ...

    def update(self, job_id: str, *, expect_status: str | None = None, **fields: Any) -> Job:
        """Set fields and append a transition when ``status`` changes.

        ``expect_status``: only if the job is in that status now, else :class:`~imagemint.errors.Conflict`.
        """
        ...

    def stale_open_jobs(self, updated_before: float, limit: int) -> list[Job]:
        """Jobs still ACCEPTED or RUNNING, unchanged since ``updated_before`` (for the sweeper)."""
        ...


class AccountStore(Protocol):
    def create_account(self, account: Account) -> None: ...

    def get_account(self, account_id: str) -> Account | None: ...

    def put_key(self, record: ApiKeyRecord) -> None: ...

    def get_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    def charge(self, account_id: str, amount: int) -> int:
        """Take ``amount`` credits atomically; raise InsufficientCredits; return the new balance."""
        ...

    def refund(self, account_id: str, amount: int) -> int: ...

    def add_credits(self, account_id: str, amount: int) -> int: ...

    # Keys (imagemint.auth).
    def touch_key(self, key_hash: str, at: float, min_interval_s: float) -> bool:
        """Set ``last_used_at`` unless it was set less than ``min_interval_s`` ago; True when written."""
        ...

    def revoke_key(self, key_hash: str, at: float) -> ApiKeyRecord | None:
        """Mark a key revoked; the updated record, or None when there is no such key."""
        ...

    def list_account_items(self, account_id: str) -> tuple[list[ApiKeyRecord], list[LedgerEntry]]:
        """The keys and ledger lines of an account (admin use)."""
        ...

    # Credits and the usage ledger (imagemint.credits).
    def charge_job(self, entry: LedgerEntry) -> None:
        """In one atomic write: take ``entry.credits`` if the balance allows and create the ledger line.

        InsufficientCredits (required / available) when it does not; NotFound for no account;
        nothing happens when the line exists already (the job was charged).
        """
        ...

    def refund_job(self, account_id: str, entry_id: str, amount: int, *, reason: str) -> bool:
        """In one atomic write: give ``amount`` back and mark the ledger line refunded, unless it was.

        True when credits were given back now, False when the line was refunded before (or is absent).
        """
        ...

    def get_ledger(self, account_id: str, entry_id: str) -> LedgerEntry | None: ...

    def grant(self, entry: LedgerEntry) -> int:
        """Add ``entry.credits`` (may be negative, never below zero) with its ledger line; the new balance."""
        ...


class Pipeline(Protocol):
    """Runs the generation state machine for one job."""

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        """Run to the end; return the state machine's output (the job record's result)."""
        ...

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start an execution with this input and return at once (its id, when there is one)."""
        ...
