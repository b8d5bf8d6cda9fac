"""Provenance steps: archive each image and its moment metadata on Arweave, then mint the moment.

The state machine runs them after Generate when a request asks for them
(the legacy endpoint always does): ArchiveImages (a Map, one item per image),
ArchiveMetadata, Mint. Each step takes what the previous ones produced and
returns a small JSON record; the Record step puts together exactly what
succeeded. Stores and minters are built from settings once per process:

* ``archive_mode``: ``local`` (the embedded signed store in our bucket, served
  at the local gateway), ``arweave`` (a real gateway: ArLocal or arweave.net),
  ``off``.
* ``chain_mode``: ``local`` (the embedded EVM with the Zora contracts), ``rpc``
  (Base / Base Sepolia / anvil through web3), ``off``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from imagemint import APP_NAME, __version__
from imagemint.deps import Deps
from imagemint.errors import InternalError
from imagemint.models import GenerationRequest, GenerationResult, StoredImage

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _wallet(deps: Deps) -> dict[str, Any]:
    from imagemint.arweave.wallet import load_wallet, load_wallet_from_parameter

    s = deps.settings
    if s.arweave_wallet_param:
        return load_wallet_from_parameter(s.arweave_wallet_param)
    if s.arweave_wallet_file:
        return load_wallet(s.arweave_wallet_file)
    raise InternalError("No Arweave wallet configured (IMAGEMINT_ARWEAVE_WALLET_PARAM)")


def archive_store(deps: Deps) -> Any:
    with _lock:
        store = _cache.get("archive")
        if store is None:
            s = deps.settings
            if s.archive_mode == "off":
                raise InternalError("Archiving is off in this deployment")
            if s.archive_mode == "local":
                from imagemint.arweave.local_store import LocalSignedStore

                store = LocalSignedStore(
                    deps.images, _wallet(deps), s.arweave_gateway_url or s.public_base_url
                )
            else:
                from imagemint.arweave.gateway_store import GatewayArchiveStore

                store = GatewayArchiveStore(_wallet(deps), s.arweave_gateway_url)
            _cache["archive"] = store
        return store


def minter(deps: Deps) -> Any:
    with _lock:
        m = _cache.get("minter")
        if m is None:
            from imagemint.chain.zora import from_settings

            m = from_settings(deps.settings)
            if m is None:
                raise InternalError("Minting is off in this deployment")
            _cache["minter"] = m
        return m


def reset() -> None:
    with _lock:
        _cache.clear()


def _tags(job_id: str, media_type: str, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    tags = [
        ("Content-Type", media_type),
        ("App-Name", APP_NAME),
        ("App-Version", __version__),
        ("Job-Id", job_id),
    ]
    tags += list((extra or {}).items())
    return tags


def _archived(store: Any, record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "uri": record.uri,
        "url": store.gateway_url(record.id),
        "record": record.to_arweave_result(),
    }


def archive_image(deps: Deps, job_id: str, image: dict[str, Any], index: int) -> dict[str, Any]:
    img = StoredImage.model_validate(image)
    store = archive_store(deps)
    data = deps.images.get(img.key)
    record = store.archive(
        data, _tags(job_id, img.media_type, {"Image-Index": str(index), "SHA-256": img.sha256})
    )
    deps.jobs.update(job_id, **{f"archive_{index}": record.id})
    return _archived(store, record)


def metadata_document(
    request: GenerationRequest, result: GenerationResult, archives: list[dict[str, Any]]
) -> dict:
    first = archives[0]
    media_type = result.images[0].media_type
    return {
        "name": request.prompt[:100],
        "description": request.prompt,
        "image": first["uri"],
        "animation_url": first["uri"],
        "content": {"mime": media_type, "uri": first["uri"]},
        "attributes": [
            {"trait_type": "model", "value": result.model},
            {"trait_type": "size", "value": result.size},
            {"trait_type": "job_id", "value": result.job_id},
            {"trait_type": "images", "value": len(archives)},
        ],
        "images": [a["uri"] for a in archives],
    }


def archive_metadata(deps: Deps, job_id: str, state: dict[str, Any]) -> dict[str, Any]:
    request = GenerationRequest.model_validate(state["request"])
    result = GenerationResult.model_validate(state["result"])
    archives = state["archives"]
    doc = metadata_document(request, result, archives)
    store = archive_store(deps)
    record = store.archive(json.dumps(doc, ensure_ascii=False).encode(), _tags(job_id, "application/json"))
    return _archived(store, record)


def mint(deps: Deps, job_id: str, account_id: str, metadata_uri: str) -> dict[str, Any]:
    m = minter(deps)
    account = deps.accounts.get_account(account_id)
    creator = (account.wallet_address if account else None) or m.signer.address
    contract = m.ensure_contract(
        creator, None, f"imagemint moments of {account.name if account else account_id}"
    )
    moment = m.mint(metadata_uri, creator, contract)
    out = moment.model_dump()
    deps.jobs.update(job_id, moment=out)
    return out
