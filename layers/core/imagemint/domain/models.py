"""The one internal model under all dialects.

A dialect codec turns its wire request into a :class:`GenerationRequest` and a
:class:`GenerationResult` back into its wire response. Everything between
(jobs, the state machine, providers, storage) speaks only these types. They
are pydantic models because they cross process boundaries as JSON (Step
Functions input/output, DynamoDB job records).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OutputFormat = Literal["png", "jpeg", "webp"]
Dialect = Literal["legacy", "content", "openai", "agentai", "ingest", "cli"]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {v: k for k, v in MEDIA_TYPES.items()}


def new_job_id() -> str:
    return str(uuid.uuid4())


JOB_ID = re.compile(r"^[0-9a-f-]{36}$")  # what new_job_id makes; ids from clients are checked against it


def now() -> float:
    return round(time.time(), 3)


def recorded_moment(job: Any) -> dict[str, Any] | None:
    """The moment recorded on ``job`` (a job record, or None), if any: the Mint step's, or the one a
    batch sender recorded for it (:mod:`imagemint.domain.batching`)."""
    moment = getattr(job, "moment", None)
    return moment if isinstance(moment, dict) and moment else None


class _Model(BaseModel):
    # Built on first use, not at import: an API function's cold start never pays for the models
    # its path does not touch (subclasses inherit it with the rest of the config).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ImageInput(_Model):
    """A reference image, mask or edit input.

    Exactly one source: a URL fetched server-side (guarded, see
    :mod:`imagemint.adapters.net.fetch`), or an object already in our bucket (uploads and
    base64 inputs are put there by the API function, because Step Functions
    payloads are limited to 256 KB).
    """

    url: str | None = None
    s3_key: str | None = None
    media_type: str | None = None
    name: str = "image"  # which request field it came from, for error messages


class GenerationRequest(_Model):
    prompt: str
    model: str  # the model name as the client gave it (or the dialect default)
    n: int = 1
    size: str | None = None  # "WxH" or "auto"
    aspect_ratio: str | None = None  # "16:9", "auto", ...
    resolution: str | None = None  # "0.5K" | "1K" | "2K" | "4K"
    output_format: OutputFormat = "png"
    output_compression: int | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    seed: int | None = None
    references: list[ImageInput] = Field(default_factory=list)
    mask: ImageInput | None = None
    archive: bool = False
    mint: bool = False
    webhook_url: str | None = None  # the job's outcome is POSTed there, signed (imagemint.domain.webhooks)
    dialect: Dialect
    account_id: str
    extra: dict[str, Any] = Field(default_factory=dict)


class StoredImage(_Model):
    """An image kept in our bucket."""

    key: str
    media_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    revised_prompt: str | None = None
    # Content Credentials (imagemint.domain.credentials): manifest_label, manifest_sha256,
    # digital_source_type, source_sha256 (the bytes before signing), parent_manifest, sidecar_key.
    credentials: dict[str, Any] | None = None


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    images: int = 0


class GenerationResult(_Model):
    job_id: str
    images: list[StoredImage]
    model: str  # the model that actually ran (after aliases)
    requested_model: str
    provider: str
    size: str  # "WxH" of the first image
    usage: Usage = Field(default_factory=Usage)
    warnings: list[str] = Field(default_factory=list)
    created: int = Field(default_factory=lambda: int(time.time()))
    cost_usd: float = 0.0
    provider_metadata: dict[str, Any] = Field(default_factory=dict)
    # Provenance, filled by the archive and mint steps when they ran.
    archive: list[dict[str, Any]] | None = None
    metadata_archive: dict[str, Any] | None = None
    moment: dict[str, Any] | None = None
    # USD estimate of the Arweave rewards and the mint's gas share (the job's ``provenance_cost``).
    provenance_cost_usd: float | None = None


JobStatus = Literal["ACCEPTED", "RUNNING", "SUCCEEDED", "PARTIAL", "FAILED"]
OPEN_STATUSES: tuple[JobStatus, ...] = ("ACCEPTED", "RUNNING")  # not finished: what the sweeper looks at


class Job(_Model):
    # Steps add what they produced (archive_<i>, moment, resume_from, provenance_error, ...): keep it.
    model_config = ConfigDict(extra="allow")

    job_id: str
    account_id: str
    dialect: str
    model: str
    status: JobStatus = "ACCEPTED"
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    request: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    transitions: list[dict[str, Any]] = Field(default_factory=list)
    execution_arn: str | None = None
    resume_from: str | None = None
    provenance_error: dict[str, Any] | None = None
    base_url: str | None = (
        None  # the API's public URL when the job was accepted (links in job views, webhooks)
    )
    mode: Literal["sync", "async"] = "sync"
    webhook: dict[str, Any] | None = None  # the last delivery attempt (imagemint.domain.webhooks)
    # Credits (imagemint.domain.credits): what the job was charged and what came back.
    credits_charged: int = 0
    credits_refunded: int = 0


class Account(_Model):
    model_config = ConfigDict(extra="ignore")

    account_id: str
    name: str
    credits: int = 0
    plan: str = "free"
    wallet_address: str | None = None
    created_at: float = Field(default_factory=now)


class ApiKeyRecord(_Model):
    model_config = ConfigDict(extra="ignore")

    key_hash: str
    account_id: str
    prefix: str  # the first characters of the key, shown to humans
    created_at: float = Field(default_factory=now)
    expires_at: float | None = None
    revoked: bool = False
    revoked_at: float | None = None
    last_used_at: float | None = None  # updated at most once a minute
    name: str | None = None
    # Per-key limits; None -> the deployment's defaults (imagemint.api.ratelimit).
    rpm: int | None = None
    concurrency: int | None = None


LedgerKind = Literal["job", "grant"]


class LedgerEntry(_Model):
    """One line of an account's usage ledger: a job's charge (and its refund), or a grant of credits."""

    model_config = ConfigDict(extra="ignore")

    account_id: str
    entry_id: str  # the job id, or "grant-<uuid>"
    kind: LedgerKind = "job"
    credits: int  # charged by a job, or granted (negative: taken back by an admin)
    per_image: int = 0
    images: int = 0
    model: str | None = None
    dialect: str | None = None
    refunded: int = 0
    refunded_at: float | None = None
    refund_reason: str | None = None
    note: str | None = None
    created_at: float = Field(default_factory=now)
