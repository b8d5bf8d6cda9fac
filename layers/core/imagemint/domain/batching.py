"""Moments of concurrent jobs for one creator contract go out in one transaction.

The mint step of each job puts its moment in the contract's queue (a
:class:`~imagemint.domain.ports.MintQueue`: one DynamoDB item per contract)
and then, until its moment is recorded:

* if nobody holds the contract's lease (or it ran out), it takes it and
  becomes the sender: it waits ``mint_batch_window_s`` for others to arrive
  (a lone moment waits no longer than that), takes up to ten waiting moments
  (its own among them when it is one of the ten oldest), and mints them with
  :meth:`~imagemint.adapters.chain.zora.ZoraMinter.mint_many`: ONE multicall,
  consecutive token ids. Before the transaction is sent each job gets its part
  journalled (``mint_tx``: the shared transaction, its own uri and token id);
  after the receipt each job gets its ``moment`` and ``mint_cost``. Then it gives
  the lease up;
* otherwise it waits (polling its own job record) for the sender to record
  its moment. A taken moment stays in the queue item's ``taken`` map until its
  sender recorded it, and cannot be queued again meanwhile: a re-run of the
  step (Step Functions' retry after a timeout) waits for that sender instead
  of minting a second time. If the sender is gone (its lease ran out or it
  gave it up after a failure), the job settles the transaction journalled
  for it (:meth:`~imagemint.adapters.chain.zora.ZoraMinter.resume`); when
  there is none, or it can never be mined, the moment goes back in the queue.

One sender per contract at a time is also what keeps token ids right across
processes (the multicall's ``assumeLastTokenIdMatches`` guards it), while
different contracts mint in parallel (nonces come from the signer's counter).
A sender that fails before sending puts the others' moments back and raises
its own error (Step Functions retries the step; a job left PARTIAL can be
resumed).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from imagemint.domain.ports import Deps, MintQueue
from imagemint.errors import MintError
from imagemint.observability import logger

#: Most moments in one transaction (:data:`imagemint.adapters.chain.zora.MAX_BATCH`).
MAX_BATCH = 10
#: How long a sender's lease lasts: the collection window plus a receipt's wait, with room.
LEASE_S = 150.0
#: How long a waiting step waits for its moment before it gives up (the step is retried).
WAIT_S = 100.0
POLL_S = 0.5


def queue_name(chain_id: int, contract: str) -> str:
    return f"{chain_id}#{contract.lower()}"


def mint_batched(
    deps: Deps,
    queue: MintQueue,
    minter: Any,
    job_id: str,
    uri: str,
    creator: str,
    contract: str,
    record: Callable[[str, Any], None],
    *,
    window_s: float,
    wait_s: float = WAIT_S,
    poll_s: float = POLL_S,
) -> dict[str, Any]:
    """Mint ``job_id``'s moment through the contract's queue; its moment (as recorded on the job).

    ``record(job_id, outcome)`` writes a minted job's moment and cost on its record.
    """
    name = queue_name(minter.chain_id, contract)
    entry = {"uri": uri, "creator": creator, "at": time.time()}
    # This run's own identity as a sender: never the job id alone. Step Functions retries a step that
    # timed out while the first run may still be sending (the Task's timeout is shorter than the
    # function's); a second run under the same name would pass the lease's "leader = me" check,
    # send beside the first, and give the first one's lease up, so that the waiters took its live
    # moments for abandoned ones and minted them again.
    sender = f"{job_id}#{secrets.token_hex(6)}"
    job = deps.jobs.get(job_id)
    pending = getattr(job, "mint_tx", None)
    if isinstance(pending, dict) and pending and job_id not in queue.state(name)[1]:
        # A journal no sender holds (an earlier run's): settle it before anything new is signed.
        outcome = minter.resume_detailed(pending, journal=_journal(deps, job_id))
        if outcome is not None and pending.get("uri") == uri:
            record(job_id, outcome)
            return outcome.moment.model_dump()
    queue.enqueue(name, job_id, entry)  # False: a sender has it already (a re-run): wait for it below
    deadline = time.monotonic() + wait_s
    while True:
        job = deps.jobs.get(job_id)
        moment = getattr(job, "moment", None)
        if isinstance(moment, dict) and moment:
            return moment
        waiting, taken, leader, until = queue.state(name)
        now = time.time()
        holder = taken.get(job_id)
        if holder is not None:
            if holder == leader and until >= now:
                pass  # its sender is at work: wait for it to record the moment
            else:  # its sender is gone: settle what it journalled, else put the moment back
                pending = getattr(job, "mint_tx", None)
                outcome = None
                if isinstance(pending, dict) and pending.get("uri") == uri:
                    outcome = minter.resume_detailed(pending, journal=_journal(deps, job_id))
                if outcome is not None:
                    record(job_id, outcome)
                    queue.done(name, holder, [job_id])
                    return outcome.moment.model_dump()
                queue.untake(name, job_id, holder, entry)
                continue
        elif job_id not in waiting:
            queue.enqueue(name, job_id, entry)
            continue
        elif queue.lead(name, sender, now + LEASE_S, now):
            try:
                done = _send(deps, queue, minter, name, job_id, sender, contract, record, window_s)
            finally:
                queue.release(name, sender)
            if done is not None:
                return done
            continue
        if time.monotonic() > deadline:
            raise MintError(
                f"No moment recorded after {wait_s:g} s in the contract's queue", reason="timeout"
            )
        time.sleep(poll_s)


def _journal(deps: Deps, job_id: str, sent: set[str] | None = None) -> Callable[[dict[str, Any]], None]:
    def journal(pending: dict[str, Any]) -> None:
        deps.jobs.update(job_id, mint_tx=pending)
        if sent is not None:
            sent.add(job_id)

    return journal


def _send(
    deps: Deps,
    queue: MintQueue,
    minter: Any,
    name: str,
    job_id: str,
    sender: str,
    contract: str,
    record: Callable[[str, Any], None],
    window_s: float,
) -> dict[str, Any] | None:
    """As the sender (``sender``: this run's identity): collect, take, mint, record. Own moment
    (``job_id``'s), or None when it was not in this batch."""
    if window_s > 0:
        time.sleep(window_s)
    waiting = queue.state(name)[0]
    size = int(getattr(minter, "max_batch", MAX_BATCH))
    batch = sorted(waiting.items(), key=lambda kv: (float(kv[1].get("at", 0)), kv[0]))[:size]
    if not batch or not queue.take(name, sender, [j for j, _ in batch]):
        return None
    ids = [j for j, _ in batch]
    journalled: set[str] = set()
    try:
        outcomes = minter.mint_many(
            contract,
            [(e["uri"], e["creator"]) for _, e in batch],
            [_journal(deps, j, journalled) for j in ids],
        )
    except MintError:
        # Never journalled: never sent, back in the queue. Journalled ones stay taken by this sender:
        # once its lease is given up, each job settles the transaction it journalled.
        for other, entry in batch:
            if other not in journalled:
                queue.untake(name, other, sender, entry)
        raise
    logger.info("minted a batch", extra={"contract": contract, "moments": len(ids)})
    for other, outcome in zip(ids, outcomes, strict=True):
        record(other, outcome)
    queue.done(name, sender, ids)
    if job_id in ids:
        return outcomes[ids.index(job_id)].moment.model_dump()
    return None
