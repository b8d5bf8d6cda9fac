"""The one place that builds every port and client of a process.

Everything is built lazily from :mod:`imagemint.settings` on first use and
cached for the life of the process (a warm Lambda reuses it). Tests and the
local runtime replace any part with :func:`override` and undo it all with
:func:`reset`; nothing else in the package builds a client, a store, a
provider or a minter.

* :func:`get_deps` — job, account and image stores, pipeline, rate-limit store
  and the Idempotency-Key persistence (the :class:`Deps` bundle).
* :func:`provider_for` — the image provider that runs a registry model, by
  ``provider_mode``: ``live`` (deployed: the OpenAI or fal adapter, or
  :class:`~imagemint.errors.ProviderUnavailable` when its key cannot be read),
  ``offline`` (chosen explicitly), ``auto`` (local: offline where no key is set).
* :func:`archive_store` and :func:`minter` — the provenance adapters of
  ``archive_mode`` / ``chain_mode``. The embedded modes (``embedded``) exist
  only in a process that overrides them (the local runtime); a deployed stack
  offers ``arweave`` / ``rpc`` / ``inprocess`` / ``off``.

Adapters are imported inside the builders, so a function imports only the SDKs
its own path uses (API functions never import openai, web3 or arweave).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

# Deps, the bundle get_deps() builds, is defined with the ports it holds (and importable from here).
from imagemint.domain.ports import Deps
from imagemint.errors import InternalError, ProviderUnavailable
from imagemint.settings import Settings, get_settings

if TYPE_CHECKING:
    from imagemint.domain.ports import (
        ChainReader,
        ContentSigner,
        CredentialReader,
        ImageProvider,
        MomentMinter,
    )
    from imagemint.domain.registry import ModelSpec


_lock = threading.RLock()
_built: dict[str, Any] = {}
_overrides: dict[str, Any] = {}
#: One lock per part while it is built: a slow build (the embedded chain's deploy, SSM reads) holds
#: up only callers of that part, not every other part of the process (the local runtime runs every
#: function in one process: a step's warm-up must not stall Generate's get_deps).
_building: dict[str, Any] = {}


def override(**parts: Any) -> None:
    """Use the given parts instead of building them, until :func:`reset`.

    Names: ``deps`` (a :class:`Deps`), ``archive_store``, ``minter``, ``nonce_allocator``,
    ``provider_<name>`` (``provider_openai``, ``provider_fal``: every model of that
    provider runs on it), and the builders of the embedded modes,
    ``embedded_archive_store(deps)`` and ``embedded_minter(settings)`` (the local
    runtime's, from ``imagemint_dev.embedded``); a value of None removes that override.
    """
    with _lock:
        for name, value in parts.items():
            if value is None:
                _overrides.pop(name, None)
            else:
                _overrides[name] = value


def reset(*names: str) -> None:
    """Forget every override and everything built, and undo what building changed in the process.

    With ``names`` (``"archive_store"``, ``"minter"``, ...), only those parts. The
    embedded-mode builders stay: they say what this process can offer (the
    local runtime's), not what a test chose.
    """
    with _lock:
        for name in [n for n in _built if not names or n in names]:
            del _built[name]
        for name in [n for n in _overrides if (not names or n in names) and not n.startswith("embedded_")]:
            del _overrides[name]


def _get(name: str, build: Any) -> Any:
    with _lock:
        if name in _overrides:
            return _overrides[name]
        if name in _built:
            return _built[name]
        part = _building.setdefault(name, threading.RLock())
    with part:  # built once; the others wait for this part only
        with _lock:
            if name in _built:
                return _built[name]
        value = build()
        with _lock:
            _built[name] = value
        return value


# ---------------------------------------------------------------- stores and pipeline


def get_deps() -> Deps:
    return _get("deps", _build_deps)


def set_deps(deps: Deps) -> None:
    """Shorthand for ``override(deps=deps)``."""
    override(deps=deps)


def reset_deps() -> None:
    """Forget the stores (and their override) only; settings are re-read on the next build."""
    with _lock:
        _overrides.pop("deps", None)
        _built.pop("deps", None)


def _build_deps() -> Deps:
    from imagemint.adapters.aws.accounts import DynamoAccountStore
    from imagemint.adapters.aws.client import client
    from imagemint.adapters.aws.images import S3ImageStore
    from imagemint.adapters.aws.jobs import DynamoJobStore
    from imagemint.adapters.aws.limits import DynamoLimitStore
    from imagemint.adapters.aws.mintqueue import DynamoMintQueue
    from imagemint.adapters.aws.pipeline import StepFunctionsPipeline

    s = get_settings()
    ddb: Any = client("dynamodb", s.region)
    pipeline = (
        StepFunctionsPipeline(
            client("stepfunctions", s.region), s.state_machine_arn, s.async_state_machine_arn
        )
        if s.state_machine_arn
        else None
    )
    return Deps(
        settings=s,
        jobs=DynamoJobStore(ddb, s.jobs_table),
        accounts=DynamoAccountStore(ddb, s.accounts_table),
        images=S3ImageStore(client("s3", s.region), s.bucket),
        pipeline=pipeline,
        limits=DynamoLimitStore(ddb, s.accounts_table),
        mint_queue=DynamoMintQueue(ddb, s.accounts_table),
    )


def idempotency_persistence(deps: Deps) -> Any | None:
    """The Idempotency-Key persistence layer (:mod:`imagemint.api.idempotency`).

    The deps' own (tests, the local runtime), else, when a table is configured, Powertools'
    DynamoDB layer, built on first use and kept on the deps; None when idempotency is off.
    """
    if deps.idempotency is None and deps.settings.idempotency_table:
        with _lock:
            if deps.idempotency is None:
                from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

                from imagemint.adapters.aws.client import client

                deps.idempotency = DynamoDBPersistenceLayer(
                    table_name=deps.settings.idempotency_table,
                    boto3_client=client("dynamodb", deps.settings.region),
                )
    return deps.idempotency


# ---------------------------------------------------------------- providers


def register_provider(name: str, provider: ImageProvider | None) -> None:
    """Run every model of provider ``name`` ("openai", "fal") on ``provider``; None removes it."""
    override(**{f"provider_{name}": provider})


def _secret(value: Any, param: str, mode: str) -> str | None:
    """The provider key: given directly (local), or read from SSM / Secrets Manager.

    ``live`` fails closed: a parameter that is missing, unreadable (AccessDenied)
    or throttled is :class:`ProviderUnavailable` naming it, never a silent
    fallback to the offline provider. ``auto`` (local development) falls back.
    """
    if value is not None:
        return value.get_secret_value()
    if not param:
        if mode == "live":
            raise ProviderUnavailable("No key parameter is configured for this provider", param="key")
        return None
    from aws_lambda_powertools.utilities import parameters

    try:
        if param.startswith("secret:"):
            key = str(parameters.get_secret(param.removeprefix("secret:"), max_age=300))
        else:
            key = str(parameters.get_parameter(param, decrypt=True, max_age=300))
    except parameters.exceptions.GetParameterError:
        from imagemint.observability import logger

        if mode == "live":
            logger.warning("provider key parameter cannot be read", extra={"parameter": param})
            raise ProviderUnavailable(
                f"The provider key in parameter {param} cannot be read; nothing was charged", param=param
            ) from None
        return None
    if not key.strip() and mode == "live":
        raise ProviderUnavailable(f"The provider key in parameter {param} is empty", param=param)
    return key.strip() or None


def provider_for(spec: ModelSpec, settings: Settings) -> tuple[ImageProvider, list[str]]:
    """The provider that runs ``spec``, and warnings to pass on to the client."""
    name = f"provider_{spec.provider}"
    with _lock:
        if name in _overrides:
            return _overrides[name], []
    mode = settings.provider_mode
    if spec.provider == "openai" and mode != "offline":
        key = _secret(settings.openai_api_key, settings.openai_api_key_param, mode)
        if key:
            from imagemint.adapters.providers.openai_provider import OpenAIProvider

            return _get(name, lambda: OpenAIProvider.from_settings(settings, api_key=key)), []
    elif spec.provider == "fal" and mode != "offline":
        key = _secret(settings.fal_key, settings.fal_key_param, mode)
        if key:
            from imagemint.adapters.providers.fal_provider import FalProvider

            return _get(name, lambda: FalProvider.from_settings(settings, key=key)), []
    from imagemint.adapters.providers.local import LocalProvider

    if mode == "offline":
        warning = f"This deployment runs offline: model '{spec.name}' ran on the offline 'local' provider."
    else:
        warning = (
            f"No {spec.provider} key is configured: model '{spec.name}' ran on the offline 'local' provider."
        )
    return _get("provider_local", LocalProvider), [warning]


# ---------------------------------------------------------------- provenance


def _wallet(settings: Settings) -> dict[str, Any]:
    """The Arweave wallet; missing, unreadable or not a JWK: ArchiveError ``config`` naming the parameter
    (the job ends PARTIAL, resumable once the parameter is fixed)."""
    from imagemint.adapters.arweave.wallet import load_wallet, load_wallet_from_parameter
    from imagemint.errors import ArchiveError, WalletError

    param = settings.arweave_wallet_param
    try:
        if param:
            return load_wallet_from_parameter(param)
        if settings.arweave_wallet_file:
            return load_wallet(settings.arweave_wallet_file)
    except WalletError as exc:
        raise ArchiveError(
            f"{exc.message}; nothing was archived", param=param or None, reason="config"
        ) from None
    raise ArchiveError(
        "No Arweave wallet is configured (IMAGEMINT_ARWEAVE_WALLET_PARAM)",
        param="IMAGEMINT_ARWEAVE_WALLET_PARAM",
        reason="config",
    )


def _embedded(name: str, mode_var: str) -> Any:
    builder = _overrides.get(f"embedded_{name}")
    if builder is None:
        raise InternalError(
            f"{mode_var}=embedded is provided by the local runtime only (imagemint serve); "
            "a deployed stack uses arweave / rpc or off"
        )
    return builder


def archive_store(deps: Deps | None = None) -> Any:
    """The Arweave store of ``archive_mode`` (an :class:`~imagemint.adapters.arweave.store.ArchiveStore`)."""
    deps = deps or get_deps()

    def build() -> Any:
        s = deps.settings
        if s.archive_mode == "off":
            raise InternalError("Archiving is off in this deployment")
        if s.archive_mode == "embedded":
            return _embedded("archive_store", "IMAGEMINT_ARCHIVE_MODE")(deps)
        from imagemint.adapters.arweave.gateway_store import GatewayArchiveStore

        return GatewayArchiveStore(_wallet(s), s.arweave_gateway_url)

    return _get("archive_store", build)


def minter(settings: Settings | None = None) -> MomentMinter:
    """The minter of ``chain_mode``."""
    s = settings or get_settings()

    def build() -> MomentMinter:
        if s.chain_mode == "off":
            raise InternalError("Minting is off in this deployment")
        if s.chain_mode == "embedded":
            return _embedded("minter", "IMAGEMINT_CHAIN_MODE")(s)
        if s.chain_mode == "inprocess":  # In Process's HTTP API; no signer, no web3 unless an RPC URL is set
            from imagemint.adapters.chain.inprocess import InProcessMinter

            return InProcessMinter.from_settings(s)  # type: ignore[return-value]
        from imagemint.adapters.chain.zora import from_settings

        return from_settings(s, nonces=nonce_allocator(s))

    return _get("minter", build)


def nonce_allocator(settings: Settings | None = None) -> Any:
    """The signer's nonce counter (:class:`~imagemint.domain.ports.NonceAllocator`), accounts table."""
    s = settings or get_settings()

    def build() -> Any:
        from imagemint.adapters.aws.client import client
        from imagemint.adapters.aws.nonces import DynamoNonceAllocator

        return DynamoNonceAllocator(client("dynamodb", s.region), s.accounts_table)

    return _get("nonce_allocator", build)


# ---------------------------------------------------------------- content credentials (C2PA)


def _parameter_text(param: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    try:
        if param.startswith("secret:"):
            return str(parameters.get_secret(param.removeprefix("secret:"), max_age=300))
        return str(parameters.get_parameter(param, decrypt=True, max_age=300))
    except parameters.exceptions.GetParameterError:
        raise InternalError(f"The Content Credentials parameter {param} cannot be read") from None


def _trust_anchors(s: Settings) -> bytes:
    """Our own chain's root (when readable) plus the configured anchors (PEM)."""
    from pathlib import Path

    from imagemint.adapters.c2pa.signer import root_of

    pem = b""
    if s.c2pa_cert_chain_param:
        pem += root_of(_parameter_text(s.c2pa_cert_chain_param).encode())
    if s.c2pa_trust_anchors_param:
        pem += b"\n" + _parameter_text(s.c2pa_trust_anchors_param).encode()
    if s.c2pa_trust_anchors_file:
        pem += b"\n" + Path(s.c2pa_trust_anchors_file).read_bytes()
    return pem.strip()


def content_signer(settings: Settings | None = None) -> ContentSigner | None:
    """The C2PA signer of ``sign_mode`` (None when ``off``): chain and key from SSM / Secrets Manager."""
    s = settings or get_settings()
    if s.sign_mode == "off":
        return None

    def build() -> ContentSigner:
        from imagemint.adapters.c2pa.signer import C2paContentSigner

        if not (s.c2pa_cert_chain_param and s.c2pa_private_key_param):
            raise InternalError("sign_mode=c2pa needs IMAGEMINT_C2PA_CERT_CHAIN_PARAM and _PRIVATE_KEY_PARAM")
        chain = _parameter_text(s.c2pa_cert_chain_param).encode()
        key = _parameter_text(s.c2pa_private_key_param).encode()
        return C2paContentSigner(chain, key, trust_anchors_pem=_trust_anchors(s))

    return _get("content_signer", build)


def credential_reader(settings: Settings | None = None) -> CredentialReader:
    """A C2PA reader that trusts our root and the configured anchors."""
    s = settings or get_settings()

    def build() -> CredentialReader:
        from imagemint.adapters.c2pa.signer import C2paCredentialReader

        return C2paCredentialReader(_trust_anchors(s))

    return _get("credential_reader", build)


def chain_reader(settings: Settings | None = None) -> ChainReader:
    """Reads moments back (``uri``, ``balanceOf``): the embedded chain's, or the RPC of ``chain_mode`` rpc."""
    s = settings or get_settings()

    def build() -> ChainReader:
        if s.chain_mode == "off":
            raise InternalError("Minting is off in this deployment")
        if s.chain_mode == "inprocess":  # the RPC's reader, or one that says no RPC URL is configured
            from imagemint.adapters.chain.inprocess import chain_reader as inprocess_reader

            return inprocess_reader(s)  # type: ignore[no-any-return]
        from imagemint.adapters.chain.reader import Web3ChainReader

        if s.chain_mode == "embedded":
            return Web3ChainReader(minter(s).w3)  # type: ignore[attr-defined]
        return Web3ChainReader.from_settings(s)

    return _get("chain_reader", build)
