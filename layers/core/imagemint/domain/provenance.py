"""Provenance steps: archive each image and its moment metadata on Arweave, then mint the moment.

The state machine runs them after Generate when a request asks for them
(the legacy endpoint always does): ArchiveImages (a Map, one item per image),
ArchiveMetadata, Mint. Each step takes what the previous ones produced and
returns a small JSON record; the Record step puts together exactly what
succeeded. Stores and minters are built from settings once per process:

* ``archive_mode``: ``arweave`` (a real gateway: ArLocal or arweave.net),
  ``off``, or ``embedded`` (the local runtime's signed store in our bucket).
* ``chain_mode``: ``rpc`` (Base / Base Sepolia / anvil through web3), ``off``,
  or ``embedded`` (the local runtime's in-process EVM with the Zora contracts),
  or ``inprocess`` (In Process's HTTP API creates the moment: :mod:`imagemint.domain.hosted_mint`).

The adapters come from :mod:`imagemint.wiring`.

Re-runs. Step Functions runs a step again, with the same input, when its
function crashed or timed out (``Runtime.ExitError``, ``Sandbox.Timedout``,
``States.Timeout`` in the ASL's Retry), and a PARTIAL job can be resumed
later. Each step therefore does its outside work once per job, whatever
point a killed run reached, with the job record as its journal:

* archive (an image, or the metadata): the signed transaction header is saved
  on the job (``archive_tx_<index>``, ``archive_tx_metadata``) before it is
  stored or posted; a re-run commits that same transaction (same id; see
  :func:`imagemint.adapters.arweave.store.archive_once`) instead of signing a second one.
* mint: a moment already on the job (``moment``) is returned as it is; else
  the signed transaction (raw bytes, hash, nonce, expected token id) is saved
  on the job (``mint_tx``) before it is sent, and a re-run settles it
  (receipt, or the same raw transaction sent again) before anything new is
  signed (:meth:`imagemint.adapters.chain.zora.ZoraMinter.resume`). The creator's
  contract is created deterministically, so ``ensure_contract`` finds it on a re-run.

Cost: each archive records ``archive_cost_<slot>`` (item id, reward in winston) and the mint
``mint_cost`` (per transaction: gas used, effective gas price, fee, and how many moments shared it);
:func:`imagemint.domain.costs.provenance_cost` sums them with a USD estimate at the configured
prices. Concurrent mints of one creator contract are batched into one transaction
(:mod:`imagemint.domain.batching`).

web3 is imported only on the mint path (:func:`imagemint.wiring.minter`).
"""

from __future__ import annotations

import json
from typing import Any

from imagemint import APP_NAME, __version__, wiring
from imagemint.domain.costs import archive_cost, mint_cost, prices
from imagemint.domain.models import GenerationRequest, GenerationResult, StoredImage, recorded_moment
from imagemint.domain.ports import Deps
from imagemint.observability import logger


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


def _journalled_archive(
    deps: Deps, job_id: str, slot: str, data: bytes, tags: list[tuple[str, str]]
) -> dict[str, Any]:
    """Archive ``data`` once for (job, slot): the signed header goes on the job record before it is sent."""
    from imagemint.adapters.arweave.store import archive_once

    store = wiring.archive_store(deps)
    field = f"archive_tx_{slot}"

    def load() -> str | None:
        job = deps.jobs.get(job_id)
        value = getattr(job, field, None) if job is not None else None
        return value if isinstance(value, str) else None

    def save(header: str) -> None:
        deps.jobs.update(job_id, **{field: header})

    record = archive_once(store, data, tags, load=load, save=save)
    cost = {**archive_cost(record, deps.settings), "prices_usd": prices(deps.settings)}
    deps.jobs.update(job_id, **{f"archive_cost_{slot}": cost})  # what it cost (costs.provenance_cost)
    return _archived(store, record)


def archive_image(deps: Deps, job_id: str, image: dict[str, Any], index: int) -> dict[str, Any]:
    img = StoredImage.model_validate(image)
    data = deps.images.get(img.key)
    extra = {"Image-Index": str(index), "SHA-256": img.sha256}
    if img.credentials:  # signed by the Sign step: the manifest that binds these bytes
        extra["C2PA-Manifest"] = str(img.credentials.get("manifest_label", ""))
    tags = _tags(job_id, img.media_type, extra)
    out = _journalled_archive(deps, job_id, str(index), data, tags)
    deps.jobs.update(job_id, **{f"archive_{index}": out["id"]})
    return out


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
        # The chain back to the pixels (GET /api/verify): each archived image's bytes and the C2PA
        # manifest signed into them (imagemint.domain.credentials), and the job that made them.
        "job_id": result.job_id,
        "content_credentials": [
            {
                "image": a["uri"],
                "sha256": img.sha256,
                "manifest_label": (img.credentials or {}).get("manifest_label"),
                "manifest_sha256": (img.credentials or {}).get("manifest_sha256"),
                "digital_source_type": (img.credentials or {}).get("digital_source_type"),
            }
            for a, img in zip(archives, result.images, strict=False)
        ],
    }


def archive_metadata(deps: Deps, job_id: str, state: dict[str, Any]) -> dict[str, Any]:
    request = GenerationRequest.model_validate(state["request"])
    result = GenerationResult.model_validate(state["result"])
    archives = state["archives"]
    doc = metadata_document(request, result, archives)
    data = json.dumps(doc, ensure_ascii=False).encode()
    return _journalled_archive(deps, job_id, "metadata", data, _tags(job_id, "application/json"))


def _complete_late(deps: Deps, job_ids: list[str]) -> None:
    """Jobs this sender minted for after they were recorded PARTIAL (their step gave up waiting):
    SUCCEEDED now (:func:`imagemint.domain.steps.complete_late_moment`), after the batch is done, so
    that no other job's moment waits on a webhook. A failure leaves the job PARTIAL and resumable."""
    if not job_ids:
        return
    from imagemint.domain.steps import complete_late_moment

    for jid in job_ids:
        try:
            complete_late_moment(deps, jid)
        except Exception:
            logger.exception("a PARTIAL job's late moment could not complete it", extra={"job_id": jid})


def mint(deps: Deps, job_id: str, account_id: str, metadata_uri: str) -> dict[str, Any]:
    job = deps.jobs.get(job_id)
    recorded = recorded_moment(job)
    if recorded is not None:
        return recorded  # a run killed after it minted and recorded: nothing to do
    m = wiring.minter(deps.settings)
    if getattr(m, "hosted", False):  # chain_mode=inprocess: the service creates it (its own journal)
        from imagemint.domain import hosted_mint

        return hosted_mint.mint(deps, job, job_id, account_id, metadata_uri, m)  # type: ignore[arg-type]

    def journal(pending: dict[str, Any]) -> None:  # before each transaction is sent
        deps.jobs.update(job_id, mint_tx=pending)

    late: list[str] = []  # jobs recorded PARTIAL before this run recorded their moment

    def record(jid: str, outcome: Any) -> None:
        cost = {**mint_cost(outcome, deps.settings), "prices_usd": prices(deps.settings)}
        after = deps.jobs.update(jid, moment=outcome.moment.model_dump(), mint_cost=cost)
        if after.status == "PARTIAL" and after.resume_from == "mint":
            late.append(jid)

    pending = getattr(job, "mint_tx", None) if job is not None else None
    batched = deps.mint_queue is not None and hasattr(m, "mint_many")
    if isinstance(pending, dict) and pending and not batched:  # batched: the coordinator settles it
        if pending.get("uri") != metadata_uri:
            logger.warning("pending mint is for other metadata; settling it first", extra={"job_id": job_id})
        resume = getattr(m, "resume_detailed", None)
        if resume is not None:
            outcome = resume(pending, journal=journal)
            if outcome is not None and pending.get("uri") == metadata_uri:
                record(job_id, outcome)
                return outcome.moment.model_dump()
        else:
            moment = m.resume(pending, journal=journal)
            if moment is not None and pending.get("uri") == metadata_uri:
                deps.jobs.update(job_id, moment=moment.model_dump())
                return moment.model_dump()
    account = deps.accounts.get_account(account_id)
    creator = (account.wallet_address if account else None) or m.signer.address
    contract = m.ensure_contract(
        creator, None, f"imagemint moments of {account.name if account else account_id}"
    )
    if batched:
        from imagemint.domain.batching import mint_batched

        try:
            return mint_batched(
                deps,
                deps.mint_queue,
                m,
                job_id,
                metadata_uri,
                creator,
                contract,
                record,
                # A synchronous caller is waiting under the gateway's 30 s: its moment goes out with what
                # is pending now and waits for no one; async jobs wait the window to share a transaction.
                window_s=0.0 if getattr(job, "mode", None) == "sync" else deps.settings.mint_batch_window_s,
                job=job,
            )
        finally:
            _complete_late(deps, late)
    detailed = getattr(m, "mint_detailed", None)
    if detailed is not None:
        outcome = detailed(metadata_uri, creator, contract, journal=journal)
        record(job_id, outcome)
        return outcome.moment.model_dump()
    moment = m.mint(metadata_uri, creator, contract, journal=journal)
    out = moment.model_dump()
    deps.jobs.update(job_id, moment=out)
    return out
