"""A job recorded PARTIAL because its Mint step gave up waiting (MintPending past its retries) while its
moment was still queued is completed when that moment is minted after all: by the batch sender that
records it, or by the Record step when the moment arrived while it wrote PARTIAL. Once, never charged
again, and never beside a resume."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from imagemint import wiring
from imagemint.domain import credits, provenance, steps
from imagemint.domain.batching import queue_name
from imagemint.domain.models import GenerationRequest, Job, new_job_id
from imagemint.testing.memory import MemoryJobStore, MemoryMintQueue
from imagemint.wiring import Deps
from imagemint_dev.embedded.chain import LocalChain

ARCHIVES = [{"id": "i" * 43, "uri": "ar://" + "i" * 43}]
METADATA = {"id": "m" * 43, "uri": "ar://" + "m" * 43}
MOMENT = {"contractAddress": "0x" + "cd" * 20, "tokenId": "7", "hash": "0x" + "77" * 32, "chainId": 8453}


def _uri() -> str:
    return "ar://" + secrets.token_urlsafe(32)[:43]


def _job(deps: Deps, account: Any, **request: Any) -> tuple[str, GenerationRequest]:
    acc, _ = account
    req = GenerationRequest(
        prompt="late", model="gpt-image-1", dialect="legacy", account_id=acc.account_id,
        archive=True, mint=True, **request,
    )  # fmt: skip
    job = Job(
        job_id=new_job_id(),
        account_id=acc.account_id,
        dialect="legacy",
        model=req.model,
        request=req.model_dump(exclude_none=True),
    )
    deps.jobs.create(job)
    credits.charge(deps, job, credits.quote(0.042, 1))
    return job.job_id, req


def _made(deps: Deps, job_id: str, req: GenerationRequest, **state: Any) -> dict[str, Any]:
    """The Record step's input for a job whose images were made (here) and archived (``ARCHIVES``)."""
    result = steps.generate(deps, job_id, req)
    return {
        "job_id": job_id,
        "request": req.model_dump(exclude_none=True),
        "result": result.model_dump(exclude_none=True),
        "archives": ARCHIVES,
        "metadata": METADATA,
        **state,
    }


def _partial(deps: Deps, account: Any, **request: Any) -> str:
    """A job whose images were made and archived, recorded PARTIAL for want of its moment."""
    job_id, req = _job(deps, account, **request)
    steps.record_state(deps, _made(deps, job_id, req))
    job = deps.jobs.get(job_id)
    assert job.status == "PARTIAL" and job.resume_from == "mint"
    return job_id


def _balance(deps: Deps, account: Any) -> int:
    return deps.accounts.get_account(account[0].account_id).credits


def _completed(job: Job) -> None:
    assert job.status == "SUCCEEDED"
    assert job.resume_from is None and job.provenance_error is None
    assert job.result["moment"] == job.moment
    assert job.result["archive"] == ARCHIVES and job.result["metadata_archive"] == METADATA
    assert not any(w.endswith(steps.RESUME_NOTE) for w in job.result["warnings"])


def test_a_moment_recorded_on_a_partial_job_completes_it_once(deps: Deps, account: Any) -> None:
    job_id = _partial(deps, account)
    balance = _balance(deps, account)
    assert not steps.complete_late_moment(deps, job_id)  # no moment yet: stays PARTIAL
    deps.jobs.update(job_id, moment=MOMENT)
    assert steps.complete_late_moment(deps, job_id)
    _completed(deps.jobs.get(job_id))
    assert not steps.complete_late_moment(deps, job_id)  # once
    assert _balance(deps, account) == balance  # settled when it went PARTIAL: nothing charged again


def test_a_job_being_resumed_is_not_completed_beside_the_resume(deps: Deps, account: Any) -> None:
    job_id = _partial(deps, account)
    deps.jobs.update(job_id, moment=MOMENT)
    deps.jobs.update(job_id, expect_status="PARTIAL", status="RUNNING")  # what POST .../resume does first
    assert not steps.complete_late_moment(deps, job_id)
    assert deps.jobs.get(job_id).status == "RUNNING"


def test_only_a_job_missing_nothing_but_its_moment_is_completed(deps: Deps, account: Any) -> None:
    job_id, req = _job(deps, account)
    steps.record_state(deps, _made(deps, job_id, req, archives=None, metadata=None))  # not archived
    deps.jobs.update(job_id, moment=MOMENT)
    assert deps.jobs.get(job_id).resume_from == "archive"
    assert not steps.complete_late_moment(deps, job_id)
    assert deps.jobs.get(job_id).status == "PARTIAL"


def test_the_record_step_takes_a_moment_recorded_after_the_mint_step_gave_up(
    deps: Deps, account: Any
) -> None:
    job_id, req = _job(deps, account)
    state = _made(deps, job_id, req, provenance_error={"Error": "MintPending", "Cause": "{}"})
    deps.jobs.update(job_id, moment=MOMENT)  # a sender recorded it while the job was still RUNNING
    out = steps.record_state(deps, state)
    assert out["moment"] == MOMENT
    _completed(deps.jobs.get(job_id))


class MomentLandsDuringPartialWrite(MemoryJobStore):
    """The race the Record step closes: a sender records the moment (seeing the job still RUNNING, so
    it completes nothing) between the Record step's look at the job and its PARTIAL write."""

    def update(self, job_id: str, **fields: Any) -> Job:
        if fields.get("status") == "PARTIAL":
            super().update(job_id, moment=MOMENT)
        return super().update(job_id, **fields)


def test_a_moment_recorded_during_the_partial_write_completes_the_job(deps: Deps, account: Any) -> None:
    jobs = MomentLandsDuringPartialWrite()
    deps.jobs = jobs
    job_id, req = _job(deps, account)
    out = steps.record_state(deps, _made(deps, job_id, req))
    assert out["moment"] == MOMENT
    _completed(jobs.get(job_id))


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    chain = LocalChain()
    chain.start()
    yield chain


def test_the_batch_that_mints_a_partial_jobs_moment_completes_the_job(
    deps: Deps, account: Any, chain: LocalChain
) -> None:
    """End to end on the embedded chain: the PARTIAL job's moment waits in its contract's queue; the
    next job's Mint step sends it in its own batch, records it, and completes the PARTIAL job."""
    deps.mint_queue = MemoryMintQueue()
    minter = chain.minter()
    wiring.override(minter=minter)
    try:
        first, _ = _job(deps, account)
        contract = provenance.mint(deps, first, account[0].account_id, _uri())["contractAddress"]
        late = _partial(deps, account)
        entry = {"uri": _uri(), "creator": minter.signer.address, "at": 1.0}
        assert deps.mint_queue.enqueue(queue_name(minter.chain_id, contract), late, entry)
        now, _ = _job(deps, account)
        balance = _balance(deps, account)
        mine = provenance.mint(deps, now, account[0].account_id, _uri())
    finally:
        wiring.reset("minter")
    job = deps.jobs.get(late)
    _completed(job)
    assert job.moment["hash"] == mine["hash"]  # the one transaction carried both
    assert job.moment["tokenId"] != mine["tokenId"]
    assert job.result["provenance_cost_usd"] is not None
    assert _balance(deps, account) == balance
    assert deps.mint_queue.state(queue_name(minter.chain_id, contract))[:2] == ({}, {})


@pytest.mark.loopback_sockets
def test_a_completed_job_sends_its_succeeded_event_once(deps: Deps, account: Any) -> None:
    """Its PARTIAL event went out when it was recorded; the completion sends the succeeded one, signed,
    to a real receiver on 127.0.0.1 (loopback receivers allowed, as in the local runtime)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from imagemint.domain import webhooks

    got: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deps.settings = deps.settings.model_copy(update={"webhook_allow_loopback": True})
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        job_id = _partial(deps, account, webhook_url=url)
        deps.jobs.update(job_id, moment=MOMENT)
        assert steps.complete_late_moment(deps, job_id)
        assert not steps.complete_late_moment(deps, job_id)
    finally:
        server.shutdown()
        server.server_close()
    job = deps.jobs.get(job_id)
    _completed(job)
    assert job.webhook["delivered"] and job.webhook["event_id"] == f"evt_{job_id}_succeeded"
    ((headers, body),) = got  # one delivery
    event = json.loads(body)
    assert event["data"]["status"] == "SUCCEEDED" and event["data"]["job_id"] == job_id
    secret = webhooks.secret_for(deps.settings, job.account_id)
    assert webhooks.verify(secret, headers, body)
