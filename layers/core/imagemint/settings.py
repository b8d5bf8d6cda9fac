"""Settings: one pydantic model of the environment, read once per cold start.

Every function reads the same model (``get_settings()``); SAM's ``Globals``
and each function's ``Environment`` set the variables. Secrets are never
values of this model in AWS: the model holds the *names* of SSM parameters /
Secrets Manager secrets, read through Powertools Parameters on first use.
Locally (``imagemint serve``, tests) plain values may be given instead.

fal's queue (``fal_queue_url``) is fal's own when empty; any other value must
be ``https``, or plain ``http`` to a loopback host: a protocol stub in local
testing (the project's fal stub server). Only such a stub
queue lets fal's result images be downloaded over plain ``http``, and then from
loopback hosts only (:attr:`Settings.fal_queue_is_local`); no other setting
turns that on.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from imagemint.errors import InternalError

ENV_PREFIX = "IMAGEMINT_"
# The live model every default runs on (``IMAGEMINT_DEFAULT_MODEL``): the legacy endpoint, the
# seeds' retired defaults (AIGNE's ``dall-e-2``, agent.ai's ``DALL-E 3``), ``imagemint generate``
# and the demo. tests/unit/test_registry.py fails on the day it (or any alias) is shut down.
DEFAULT_MODEL = "gpt-image-2"
LAMBDA_MAX_REQUEST = 6_291_456  # bytes of a synchronous invocation's event (Lambda's quota)
MAX_BODY_BYTES = (LAMBDA_MAX_REQUEST - 16 * 1024) * 3 // 4  # 4,706,304: see Settings.max_body_bytes


class Settings(BaseModel):
    # Built when first read (get_settings() at the first request), not at import.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    # Resources (names from template.yaml).
    jobs_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    state_machine_arn: str = ""  # the EXPRESS machine: synchronous requests
    async_state_machine_arn: str = ""  # the STANDARD machine: async jobs, resumes (empty: the Express one)
    region: str = "us-east-1"
    # A synchronous request waits for its job at most this long after API Gateway received it (the
    # event's timeEpoch; cold start and admission included), then answers 202 (Prefer: wait /
    # respond-async) or 504 with the job id: under API Gateway's 30 s integration timeout, with a
    # second for the answer itself (rendering, Lambda's return, the gateway).
    sync_deadline_s: float = Field(default=28.0, gt=0, le=28.5)

    # Public base URL of the API (used for file URLs); empty in AWS means
    # "derive from the request" (API Gateway domain + stage).
    public_base_url: str = ""

    # Keys and auth.
    key_hash_secret: SecretStr | None = None  # local / tests
    key_hash_secret_param: str = ""  # SSM parameter or secret name in AWS
    legacy_require_key: bool = False

    # Idempotency-Key records (Powertools idempotency on DynamoDB); empty -> the header is ignored.
    idempotency_table: str = ""
    idempotency_expiry_s: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    # Per-key defaults (a key's own ``rpm`` / ``concurrency`` override them).
    rate_limit_rpm: int = Field(default=60, ge=1)
    rate_limit_concurrency: int = Field(default=4, ge=1)

    # Providers. No key configured -> every model runs on the offline provider.
    # live: a model runs on its provider or fails (503, nothing charged) when the key cannot be read;
    # offline: every model runs on the offline provider (chosen explicitly); auto (local development):
    # offline only for a provider whose key is configured nowhere.
    provider_mode: Literal["auto", "live", "offline"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_api_key_param: str = ""
    openai_base_url: str | None = None
    fal_key: SecretStr | None = None
    fal_key_param: str = ""
    # fal's queue (the fal key is sent there): empty -> fal's own. https, or for local testing only
    # plain http to a loopback host (a protocol stub), which also lets result images come over http.
    fal_queue_url: str = ""
    provider_timeout_s: float = Field(default=120.0, gt=0, le=900)
    model_aliases: str = ""  # "dall-e-2=gpt-image-2.5-flare,dall-e-3=gpt-image-2"
    default_model: str = Field(default=DEFAULT_MODEL, min_length=1)

    # Limits.
    # What a request body can be and still reach Lambda: HTTP API passes a binary body (multipart)
    # base64-encoded inside the event, and Lambda refuses an event over 6,291,456 bytes. With 16 KiB
    # kept for the rest of the event (HTTP API's request line and headers are at most 10 KiB):
    # (6,291,456 - 16,384) * 3 / 4 = 4,706,304 bytes (4.49 MiB). A larger body never reaches the
    # function (the gateway answers 413 in its own shape); up to this one the dialect answers.
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0, le=MAX_BODY_BYTES)
    max_input_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    fetch_timeout_s: float = Field(default=10.0, gt=0, le=60)
    url_ttl_s: int = Field(default=24 * 3600, ge=3600, le=7 * 24 * 3600)
    response_limit_bytes: int = Field(default=6 * 1024 * 1024 - 64 * 1024, gt=0)

    # Provenance (issue: provenance pipeline).
    archive_mode: Literal["embedded", "arweave", "off"] = "embedded"
    arweave_wallet_param: str = ""  # SSM SecureString / "secret:<name>" holding the JWK
    arweave_wallet_file: str = ""  # local development only
    arweave_gateway_url: str = ""  # "arweave": the gateway; "embedded": the public gateway base
    chain_mode: Literal["embedded", "rpc", "inprocess", "off"] = "embedded"
    # chain_mode=inprocess: moments are created through In Process's HTTP API (no signer of ours; In
    # Process pays the gas). https, or for local testing only plain http to a loopback host (a stub).
    inprocess_base_url: str = "https://inprocess.world"
    # The creator address sent as ``account`` / ``payoutRecipient`` for accounts without a wallet.
    inprocess_default_account: str = ""
    # One mint step run's whole budget for In Process calls (the ASL's Mint task stops at 20 s).
    inprocess_timeout_s: float = Field(default=15.0, gt=0, le=18)
    # A create whose answer was lost and whose moment the timeline does not show is sent again only
    # this long after it was sent (In Process's indexer may lag); before that the job stays PARTIAL.
    inprocess_lookup_grace_s: float = Field(default=120.0, ge=0, le=3600)
    # Moments of one creator contract pending together are minted in one transaction: the first mint
    # step waits this long for others before it sends (imagemint.domain.batching); 0 -> no wait.
    mint_batch_window_s: float = Field(default=1.0, ge=0, le=10)
    # Estimates only, for the USD figure of each job's provenance cost (not live prices).
    price_eth_usd: float = Field(default=3000.0, ge=0)
    price_ar_usd: float = Field(default=5.0, ge=0)

    # Content Credentials (C2PA; the sign step, /api/verify). c2pa: every image is signed with the
    # certificate chain (PEM, leaf first) and private key (PEM) in these SSM SecureStrings ("secret:<name>"
    # for Secrets Manager); off: nothing is signed (unit tests). Readers trust our chain's root plus the
    # PEM bundle in c2pa_trust_anchors_param / _file.
    sign_mode: Literal["c2pa", "off"] = "off"
    c2pa_cert_chain_param: str = ""
    c2pa_private_key_param: str = ""
    c2pa_trust_anchors_param: str = ""
    c2pa_trust_anchors_file: str = ""

    # Webhooks (imagemint.domain.webhooks). Loopback receivers: local testing only, never in AWS.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=30)
    webhook_allow_loopback: bool = False

    # The sweeper closes ACCEPTED / RUNNING jobs unchanged this long (an Express execution lasts <= 5 min).
    sweep_after_s: float = Field(default=15 * 60, ge=1)

    log_level: str = "INFO"

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("inprocess_base_url")
    @classmethod
    def _check_inprocess_base_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        parts = urlsplit(v)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme == "https" and parts.hostname:
            return v
        if parts.scheme == "http" and loopback:
            return v
        raise ValueError("inprocess_base_url must be https (plain http only to a loopback stub)")

    @field_validator("fal_queue_url")
    @classmethod
    def _check_fal_queue_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v:
            return ""
        parts = urlsplit(v)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("the port is malformed")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL are not allowed")
        host = parts.hostname or ""
        if parts.scheme == "https" and host:
            return v
        if parts.scheme == "http" and is_loopback_host(host):
            return v
        raise ValueError("must be an https URL, or a plain http URL of a loopback host (local stubs)")

    @property
    def fal_queue_is_local(self) -> bool:
        """The fal queue is a plain-http stub on this machine: local testing, never a deployment.

        Only then may fal's result images be downloaded over plain http (from loopback hosts).
        """
        return self.fal_queue_url.startswith("http://")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        if "region" not in values and env.get("AWS_REGION"):
            values["region"] = env["AWS_REGION"]
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as exc:
            fields = ", ".join(
                ENV_PREFIX + str(err["loc"][0]).upper() for err in exc.errors() if err.get("loc")
            )
            raise InternalError(f"Invalid or missing configuration: {fields}") from None

    @field_validator("default_model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from imagemint.domain.registry import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model '{v}'")
        return v

    def aliases(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in self.model_aliases.split(","):
            if "=" in pair:
                k, v = pair.split("=", 1)
                out[k.strip()] = v.strip()
        return out


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1), as a URL's host names it."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read at first use (cold start) and cached."""
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests and the local runtime change the environment)."""
    get_settings.cache_clear()
