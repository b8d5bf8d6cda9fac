"""The mint step through a hosted service (``chain_mode=inprocess``): one moment per job, never two.

:func:`imagemint.domain.provenance.mint` hands a job here when the minter is hosted
(:class:`~imagemint.domain.ports.HostedMomentMinter`). The creator is the account's wallet, else the
deployment's default account. The account's first moment creates its collection (named after the
account, its uri the first moment's metadata URI); the collection's address is then kept on the account
(``AccountStore.set_collection``, first writer wins) and later moments go to it.

The job record is the journal (``mint_tx``, as for our own signer):

* before the create request is sent: ``{"via", "stage": "sent", "uri", "account", "collection",
  "request", "sent_at"}``;
* a failure that surely created nothing (a 4xx, no connection, only the simulation ran) turns it into
  ``stage: "not_created"``; a 5xx, a timeout or a lost answer leaves ``sent``: the answer is unknown;
* the answer recorded: ``moment`` (the legacy shape), ``mint_via`` (the service, whether the
  token's ``uri`` was read back on chain) and ``mint_cost`` (the service paid the gas: 0 to us).

A re-run (the state machine's Retry, or a resume) whose journal says ``sent`` first looks the moment
up (the service's listing, by metadata URI). Found: recorded, nothing created. Not found: created
again only once ``inprocess_lookup_grace_s`` has passed since the lost request (the listing may
lag behind the chain); before that the step fails with ``unsettled`` and the job stays resumable.
"""

from __future__ import annotations

import time
from typing import Any

from imagemint.domain.ports import Deps, HostedMomentMinter, Moment
from imagemint.errors import MintError
from imagemint.observability import logger

JOURNAL_VERSION = 1
VIA = "inprocess"


def collection_key(minter: HostedMomentMinter, creator: str) -> str:
    """Where an account keeps its collection: per service, chain and creator address."""
    return f"{VIA}#{minter.chain_id}#{creator.lower()}"


def mint(
    deps: Deps, job: Any, job_id: str, account_id: str, metadata_uri: str, m: HostedMomentMinter
) -> dict:
    deadline = time.monotonic() + m.budget_s
    account = deps.accounts.get_account(account_id)
    creator = (account.wallet_address if account else None) or m.default_account
    if not creator:
        raise MintError(
            "No creator address: the account has no wallet and IMAGEMINT_INPROCESS_DEFAULT_ACCOUNT is empty",
            param="IMAGEMINT_INPROCESS_DEFAULT_ACCOUNT",
            reason="config",
        )
    key = collection_key(m, creator)
    pending = getattr(job, "mint_tx", None) if job is not None else None
    if isinstance(pending, dict) and pending.get("via") == VIA and pending.get("stage") == "sent":
        if pending.get("uri") == metadata_uri:
            found = m.find(
                str(pending.get("account")), pending.get("collection"), metadata_uri, deadline=deadline
            )
            if found is not None:
                logger.info("found the moment of a lost create answer", extra={"job_id": job_id})
                return _record(deps, job_id, account_id, key, found, metadata_uri, m, pending, created=False)
            waited = time.time() - float(pending.get("sent_at") or 0)
            grace = deps.settings.inprocess_lookup_grace_s
            if waited < grace:
                raise MintError(
                    f"A create request was sent {waited:.0f} s ago and its answer was lost; its moment "
                    f"is not listed yet. Nothing is created again before {grace:.0f} s have passed: "
                    "resume the job then",
                    reason="unsettled",
                )
            logger.warning(
                "lost create not found after the grace period; creating again", extra={"job_id": job_id}
            )

    collection = deps.accounts.get_collection(account_id, key) if account is not None else None
    name = f"imagemint moments of {account.name if account else account_id}"
    body = m.request(metadata_uri, creator, collection, name, metadata_uri)
    record: dict[str, Any] = {
        "v": JOURNAL_VERSION,
        "via": VIA,
        "stage": "sent",
        "uri": metadata_uri,
        "account": creator,
        "collection": collection,
        "request": body,
    }
    journalled = False

    def before_send() -> None:
        nonlocal journalled
        record["sent_at"] = time.time()
        deps.jobs.update(job_id, mint_tx=dict(record))
        journalled = True

    try:
        moment = m.create(body, before_send=before_send, deadline=deadline)
    except MintError as exc:
        if journalled and exc.details.get("sent") is False:
            deps.jobs.update(
                job_id, mint_tx={**record, "stage": "not_created", "reason": exc.details.get("reason")}
            )
        raise
    return _record(deps, job_id, account_id, key, moment, metadata_uri, m, record, created=True)


def _record(
    deps: Deps,
    job_id: str,
    account_id: str,
    key: str,
    moment: Moment,
    metadata_uri: str,
    m: HostedMomentMinter,
    journal: dict[str, Any],
    *,
    created: bool,
) -> dict:
    if not journal.get("collection") and deps.accounts.get_account(account_id) is not None:
        kept = deps.accounts.set_collection(account_id, key, moment.contractAddress)
        if kept.lower() != moment.contractAddress.lower():
            logger.warning(
                "another job created this account's collection first; later moments go there",
                extra={"job_id": job_id, "collection": kept},
            )
    check = m.check_onchain(moment, metadata_uri)
    s = deps.settings
    via = {"service": VIA, "base_url": s.inprocess_base_url, "answer_lost": not created, **check}
    if not moment.hash:
        via["note_hash"] = (
            "found on In Process's timeline after the create answer was lost: no transaction hash known"
        )
    cost = {
        "transactions": [],
        "gas_share": 0,
        "fee_share_wei": "0",
        "usd_estimate": 0.0,
        "paid_by": VIA,
        "prices_usd": {"ETH": s.price_eth_usd, "AR": s.price_ar_usd, "estimate": True},
    }
    out = moment.model_dump()
    deps.jobs.update(job_id, moment=out, mint_via=via, mint_cost=cost)
    return out
