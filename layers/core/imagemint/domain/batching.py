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
* otherwise it waits for the sender to record its moment, polling the queue
  item alone (small: what is pending on one contract); the job record is read
  only once its moment has left the queue (a sender records a moment before it
  forgets it) or its sender is gone. A taken moment stays in the queue item's
  ``taken`` map until its sender recorded it, and cannot be queued again
  meanwhile: a re-run of the step (Step Functions' retry) waits for that
  sender instead of minting a second time. If the sender is gone (its lease
  ran out or it gave it up after a failure), the job settles the transaction
  journalled for it (:meth:`~imagemint.adapters.chain.zora.ZoraMinter.resume`);
  when there is none, or it can never be mined, the moment goes back in the queue.

A waiting step waits at most ``wait_s`` (:data:`WAIT_S`, shorter than the
Mint state's Task timeout, a unit test checks it): then it raises
:class:`MintPending` and the state machine retries the step on that error,
which waits again (the moment stays queued or taken, never sent twice). The
step thus never runs into its Task timeout merely waiting, and no waiter
outlives its attempt. A step takes the lease only with :data:`LEAD_S` left
before that end, so that a sender normally finishes within its own attempt
(one that does not, e.g. a slow receipt, is still safe: its retry waits for it).

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

from imagemint.domain.models import recorded_moment
from imagemint.domain.ports import Deps, MintQueue
from imagemint.errors import MintError, MintPending
from imagemint.observability import logger

#: Most moments in one transaction (:data:`imagemint.adapters.chain.zora.MAX_BATCH`).
MAX_BATCH = 10
#: How long a sender's lease lasts: the collection window plus a receipt's wait, with room.
LEASE_S = 150.0
#: How long a step waits for its moment before it raises :class:`MintPending` (the state machine
#: retries the step on it): under the Mint state's ``TimeoutSeconds`` (19 s) with room for a cold start.
WAIT_S = 12.0
#: A step takes the contract's lease (becomes the sender) only with this long left of its wait: the
#: collection window, the transaction and its receipt (a 2 s block) fit before the Task's timeout.
LEAD_S = 6.0
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
    lead_s: float = LEAD_S,
    job: Any = None,
) -> dict[str, Any]:
    """Mint ``job_id``'s moment through the contract's queue; its moment (as recorded on the job).

    ``record(job_id, outcome)`` writes a minted job's moment and cost on its record. ``job``: the job
    record as the caller just read it (read here otherwise). :class:`MintPending` after ``wait_s``
    without the moment (the step is retried); a step leads only with ``lead_s`` of that left.
    """
    name = queue_name(minter.chain_id, contract)
    entry = {"uri": uri, "creator": creator, "at": time.time()}
    # This run's own identity as a sender: never the job id alone. Step Functions retries a step that
    # timed out while the first run may still be sending (the Task's timeout is shorter than the
    # function's); a second run under the same name would pass the lease's "leader = me" check,
    # send beside the first, and give the first one's lease up, so that the waiters took its live
    # moments for abandoned ones and minted them again.
    sender = f"{job_id}#{secrets.token_hex(6)}"
    started = time.monotonic()
    deadline = started + wait_s
    lead_by = deadline - min(lead_s, wait_s / 2)  # a step with a short wait still leads in its first half
    job = job if job is not None else deps.jobs.get(job_id)
    pending = getattr(job, "mint_tx", None)
    if isinstance(pending, dict) and pending and job_id not in queue.state(name)[1]:
        # A journal no sender holds (an earlier run's): settle it before anything new is signed.
        outcome = minter.resume_detailed(pending, journal=_journal(deps, job_id))
        if outcome is not None and pending.get("uri") == uri:
            record(job_id, outcome)
            return outcome.moment.model_dump()
    moment = recorded_moment(job)
    if moment is not None:
        return moment
    queue.enqueue(name, job_id, entry)  # False: a sender has it already (a re-run): wait for it below
    while True:
        waiting, taken, leader, until = queue.state(name)
        now = time.time()
        holder = taken.get(job_id)
        if holder is None and job_id not in waiting:
            # Out of the queue: recorded (a sender records a moment before it forgets it), or never queued.
            moment = recorded_moment(deps.jobs.get(job_id))
            if moment is not None:
                return moment
            queue.enqueue(name, job_id, entry)  # seen waiting at the next look
        elif holder is not None:
            if holder == leader and until >= now:
                pass  # its sender is at work: wait for it to record the moment
            else:  # its sender is gone: settle what it journalled, else put the moment back
                job = deps.jobs.get(job_id)
                moment = recorded_moment(job)
                if moment is not None:  # recorded just before the lease ended
                    return moment
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
        elif time.monotonic() <= lead_by and queue.lead(name, sender, now + LEASE_S, now):
            try:
                done = _send(deps, queue, minter, name, job_id, sender, contract, record, window_s)
            finally:
                queue.release(name, sender)
            if done is not None:
                return done
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise MintPending(
                f"The moment is still {'being sent' if holder is not None else 'queued'} after "
                f"{wait_s:g} s; the step is retried",
                queued=holder is None,
            )
        time.sleep(min(poll_s, left))


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
    # A moment recorded already (a re-run read its job just before the moment was recorded, and queued it
    # again just after its sender forgot it) is forgotten, never sent twice. Once taken by this sender it
    # cannot be recorded by anyone else, so this one look is enough.
    minted = {j: m for j, _ in batch if (m := recorded_moment(deps.jobs.get(j))) is not None}
    if minted:
        logger.warning("moments queued again after they were recorded", extra={"jobs": sorted(minted)})
        queue.done(name, sender, list(minted))
        batch = [(j, e) for j, e in batch if j not in minted]
        if not batch:
            return minted.get(job_id)
    ids = [j for j, _ in batch]
    journalled: set[str] = set()
    sent_at = time.monotonic()
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
    mined_at = time.monotonic()
    for other, outcome in zip(ids, outcomes, strict=True):
        record(other, outcome)
    queue.done(name, sender, ids)
    logger.info(
        "minted a batch",
        extra={
            "contract": contract,
            "moments": len(ids),
            "mint_s": round(mined_at - sent_at, 2),  # journal, sign, send, receipt
            "record_s": round(time.monotonic() - mined_at, 2),
        },
    )
    if job_id in ids:
        return outcomes[ids.index(job_id)].moment.model_dump()
    return minted.get(job_id)
