"""Mints at scale (issue 14): no reserved concurrency, nonces from an atomic counter, a per-contract queue,
batched moments on the embedded chain, and what provenance cost on every job."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from imagemint import wiring
from imagemint.adapters.aws.mintqueue import DynamoMintQueue
from imagemint.adapters.aws.nonces import DynamoNonceAllocator
from imagemint.domain import costs, provenance
from imagemint.domain.models import Account, Job
from imagemint.domain.views import public_view
from imagemint.settings import Settings
from imagemint.testing.memory import (
    MemoryAccountStore,
    MemoryImageStore,
    MemoryJobStore,
    MemoryMintQueue,
    MemoryNonceAllocator,
)
from imagemint.wiring import Deps
from imagemint_dev.embedded.chain import LocalChain
from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
SIGNER = "0x" + "ab" * 20


# ----------------------------------------------------------------------------- the template


def test_no_function_has_reserved_concurrency() -> None:
    functions = Template.load(ROOT / "template.yaml").of_type("AWS::Serverless::Function")
    assert functions
    assert {
        n for n, f in functions.items() if "ReservedConcurrentExecutions" in f.get("Properties", {})
    } == set()


def test_the_mint_function_may_update_the_accounts_table_and_nothing_more() -> None:
    mint = Template.load(ROOT / "template.yaml").resources["MintStepFunction"]["Properties"]
    statements = [
        s for p in mint["Policies"] if isinstance(p, dict) and "Statement" in p for s in p["Statement"]
    ]
    assert [s["Action"] for s in statements] == ["dynamodb:UpdateItem"]


# ----------------------------------------------------------------------------- nonce allocators


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch):
    moto = pytest.importorskip("moto")
    from imagemint_dev.local import motoext

    # Plain moto's conditional update reads, checks and writes without a lock, so threads racing
    # on one counter can both pass the condition; DynamoDB cannot. The local runtime's extension
    # makes each item operation atomic, as DynamoDB's are (tests/integration/test_moto_atomicity.py).
    motoext.install()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="accounts",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture(params=["memory", "dynamodb"])
def allocator(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryNonceAllocator()
    return DynamoNonceAllocator(request.getfixturevalue("ddb"), "accounts")


def test_the_counter_starts_at_the_node_and_hands_out_each_nonce_once(allocator: Any) -> None:
    assert allocator.allocate(SIGNER, 8453, 7) == 7  # first use: the node's pending nonce
    assert allocator.allocate(SIGNER, 8453, 7) == 8  # the node has not seen 7 yet: the counter leads
    assert allocator.allocate(SIGNER, 8453, 20) == 20  # the key was used elsewhere: it catches up
    assert allocator.allocate(SIGNER.upper().replace("0X", "0x"), 8453, 0) == 21  # one counter per address
    assert allocator.allocate(SIGNER, 84532, 0) == 0  # and per chain


def test_concurrent_allocations_never_repeat_a_nonce(allocator: Any) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda _: allocator.allocate(SIGNER, 8453, 3), range(40)))
    assert sorted(got) == list(range(3, 43))


# ----------------------------------------------------------------------------- the mint queue


@pytest.fixture(params=["memory", "dynamodb"])
def queue(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryMintQueue()
    return DynamoMintQueue(request.getfixturevalue("ddb"), "accounts")


def test_one_sender_at_a_time_takes_what_waits_and_a_taken_moment_is_not_queued_twice(queue: Any) -> None:
    a = {"uri": "ar://a", "creator": SIGNER, "at": 1.0}
    assert queue.enqueue("q", "a", a)
    assert queue.enqueue("q", "b", {"uri": "ar://b", "creator": SIGNER, "at": 2.0})
    assert queue.lead("q", "a", until=100.0, now=10.0)
    assert not queue.lead("q", "b", until=100.0, now=10.0)  # a's lease is live
    assert not queue.take("q", "b", ["a"])  # only the lease holder takes
    waiting, taken, leader, until = queue.state("q")
    assert set(waiting) == {"a", "b"} and taken == {} and leader == "a" and until == 100.0
    assert queue.take("q", "a", ["a", "b"])
    assert not queue.take("q", "a", ["b"])  # taken already
    assert queue.state("q")[:2] == ({}, {"a": "a", "b": "a"})
    assert not queue.enqueue("q", "b", {"uri": "ar://b", "creator": SIGNER, "at": 3.0})  # a re-run waits
    assert not queue.untake("q", "b", "someone-else", {})
    assert queue.untake("q", "b", "a", {"uri": "ar://b", "creator": SIGNER, "at": 2.0})  # never sent: back
    assert set(queue.state("q")[0]) == {"b"}
    queue.done("q", "a", ["a"])
    assert queue.state("q")[1] == {}
    queue.release("q", "b")  # not the holder: nothing happens
    assert queue.state("q")[2] == "a"
    assert queue.lead("q", "b", until=300.0, now=200.0)  # a's lease ran out
    queue.release("q", "b")
    assert queue.state("q")[2] is None


# ----------------------------------------------------------------------------- batched on the embedded chain


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    chain = LocalChain()
    chain.start()
    return chain


def test_mint_many_puts_moments_in_one_transaction_with_consecutive_ids(chain: LocalChain) -> None:
    minter = chain.minter()
    contract = minter.ensure_contract(minter.signer.address, None, "many")
    uris = [f"ar://{secrets.token_urlsafe(32)[:43]}" for _ in range(4)]
    journals: list[list[dict[str, Any]]] = [[] for _ in uris]
    outcomes = minter.mint_many(
        contract, [(u, minter.signer.address) for u in uris], [j.append for j in journals]
    )
    assert len({o.moment.hash for o in outcomes}) == 1
    ids = [int(o.moment.tokenId) for o in outcomes]
    assert ids == list(range(ids[0], ids[0] + 4))
    for journal, uri, token_id in zip(journals, uris, ids, strict=True):
        (record,) = journal
        assert record["uri"] == uri and record["token_id"] == str(token_id) and record["batch"] == 4
    # A re-run of any one job settles the shared transaction to its own token.
    resumed = minter.resume_detailed(journals[2][0])
    assert resumed is not None and resumed.moment == outcomes[2].moment
    cost = outcomes[0].costs[0]
    assert cost["moments"] == 4 and cost["gas_used"] == outcomes[0].gas_used
    assert int(cost["fee_wei"]) == cost["gas_used"] * int(cost["effective_gas_price_wei"])


def test_concurrent_jobs_of_one_creator_share_transactions_and_record_their_cost(chain: LocalChain) -> None:
    settings = Settings(jobs_table="j", accounts_table="a", bucket="b", mint_batch_window_s=0.2)
    deps = Deps(
        settings=settings,
        jobs=MemoryJobStore(),
        accounts=MemoryAccountStore(),
        images=MemoryImageStore(),
        mint_queue=MemoryMintQueue(),
    )
    minter = chain.minter()
    deps.accounts.create_account(
        Account(account_id="acct", name="acct", wallet_address=minter.signer.address)
    )
    jobs = []
    for i in range(8):
        deps.jobs.create(Job(job_id=f"job{i}", account_id="acct", dialect="legacy", model="gpt-image-2"))
        jobs.append((f"job{i}", "acct", f"ar://{secrets.token_urlsafe(32)[:43]}"))
    wiring.override(minter=minter)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            moments = list(pool.map(lambda j: provenance.mint(deps, *j), jobs))
    finally:
        wiring.reset("minter")
    assert len({(m["contractAddress"], m["tokenId"]) for m in moments}) == 8
    assert len({m["hash"] for m in moments}) < 8  # pending together: one transaction for several
    for job_id, _, _ in jobs:
        job = deps.jobs.get(job_id)
        cost = costs.provenance_cost(job)
        assert cost is not None and cost["mint"]["gas_share"] > 0
        assert cost["mint"]["prices_usd"] == {"ETH": 3000.0, "AR": 5.0, "estimate": True}
        assert public_view(job, "https://api.test")["provenance_cost"] == cost


def test_provenance_cost_sums_arweave_rewards_and_the_mint_share() -> None:
    job = Job(job_id="j", account_id="a", dialect="legacy", model="gpt-image-2")
    assert costs.provenance_cost(job) is None  # nothing stored or minted
    job = job.model_copy(
        update={
            "archive_cost_0": {"id": "img", "reward_winston": "2000000000000", "usd_estimate": 10.0},
            "archive_cost_metadata": {"id": "meta", "reward_winston": "1000", "usd_estimate": 0.000000005},
            "mint_cost": {"gas_share": 200_000, "fee_share_wei": "1000000000000000", "usd_estimate": 3.0},
        }
    )
    cost = costs.provenance_cost(job)
    assert cost["arweave_winston"] == "2000000001000"
    assert [i["slot"] for i in cost["arweave"]] == ["0", "metadata"]
    assert cost["usd_estimate"] == pytest.approx(13.000000005)


class BlockingMinter:
    """A minter at the seam: ``mint_many`` journals, then blocks until released; counts how many
    senders are inside it at once (one contract must have one sender at a time)."""

    chain_id = 8453
    max_batch = 1

    def __init__(self) -> None:
        import threading

        self.inside = 0
        self.most_inside = 0
        self.minted: list[str] = []
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self._lock = threading.Lock()

    def mint_many(self, contract: str, items: list[tuple[str, str]], journals: list[Any]) -> list[Any]:
        from types import SimpleNamespace

        from imagemint.domain.ports import Moment

        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        for journal, (uri, _) in zip(journals, items, strict=True):
            journal({"uri": uri, "stage": "multicall"})
        self.entered.release()
        self.go.wait(10)
        with self._lock:
            self.inside -= 1
            self.minted.extend(uri for uri, _ in items)
            first = len(self.minted) - len(items)
        return [
            SimpleNamespace(
                moment=Moment(contractAddress=contract, tokenId=str(first + i + 1), hash="0x1", chainId=8453)
            )
            for i in range(len(items))
        ]

    def resume_detailed(self, pending: dict[str, Any], journal: Any = None) -> Any:
        return None  # the journalled transaction is not mined (yet): what a live sender's looks like


def _batching_deps(*job_ids: str) -> Deps:
    deps = Deps(
        settings=Settings(jobs_table="j", accounts_table="a", bucket="b"),
        jobs=MemoryJobStore(),
        accounts=MemoryAccountStore(),
        images=MemoryImageStore(),
        mint_queue=MemoryMintQueue(),
    )
    for job_id in job_ids:
        deps.jobs.create(Job(job_id=job_id, account_id="acct", dialect="legacy", model="gpt-image-2"))
    return deps


def _recorder(deps: Deps) -> Any:
    """``record(job_id, outcome)`` as the mint step passes it: the moment on the job."""

    def record(job_id: str, outcome: Any) -> None:
        deps.jobs.update(job_id, moment=outcome.moment.model_dump())

    return record


def test_a_retried_step_never_sends_beside_its_own_first_run() -> None:
    """Step Functions retries a mint step whose Task timed out while its first run is still sending
    (the Task's timeout is shorter than the function's). The retry, same job, must not take the
    contract's lease from the live first run: it would send beside it, then give the lease up, and
    the first run's moments would look abandoned and be minted again."""
    from imagemint.domain.batching import mint_batched, queue_name

    deps = _batching_deps("older", "b")
    minter = BlockingMinter()
    queue = deps.mint_queue
    contract = "0x" + "cd" * 20
    # Another job's moment waits already (older): with one moment per transaction, b's first run
    # becomes the sender and sends that one first, b's own still waiting.
    queue.enqueue(queue_name(8453, contract), "older", {"uri": "ar://older", "creator": SIGNER, "at": 1.0})

    record = _recorder(deps)

    def run() -> dict[str, Any]:
        return mint_batched(
            deps, queue, minter, "b", "ar://b", SIGNER, contract, record, window_s=0, wait_s=20, poll_s=0.02
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(run)
        assert minter.entered.acquire(timeout=10)  # the first run is inside mint_many (for "older")
        retry = pool.submit(run)  # the retry: same job, the first run still sending
        minter.entered.acquire(timeout=1.0)  # without the fix the retry sends here, beside the first
        minter.go.set()
        moments = [first.result(timeout=20), retry.result(timeout=20)]
    assert minter.most_inside == 1  # never two senders for one contract at once
    assert sorted(minter.minted) == ["ar://b", "ar://older"]  # each moment minted once
    assert moments[0] == moments[1] == deps.jobs.get("b").moment


def test_a_step_waiting_on_a_live_sender_hands_back_mint_pending_before_its_task_times_out() -> None:
    """The waiter raises MintPending (its own error name: the Mint state retries it) once its wait is
    over, rather than running into the Task's timeout; its moment stays taken by the live sender, and
    the retry waits for that sender and gets the moment it recorded, minted once."""
    import time

    from imagemint.domain.batching import mint_batched
    from imagemint.domain.steps import _step_error
    from imagemint.errors import MintPending

    deps = _batching_deps("a", "b")
    minter = BlockingMinter()
    minter.max_batch = 10
    queue = deps.mint_queue
    contract = "0x" + "cd" * 20

    record = _recorder(deps)

    def run(job_id: str, wait_s: float) -> dict[str, Any]:
        return mint_batched(
            deps, queue, minter, job_id, f"ar://{job_id}", SIGNER, contract, record,
            window_s=0.3, wait_s=wait_s, poll_s=0.02, lead_s=0.1,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=3) as pool:
        sender = pool.submit(run, "a", 20)
        time.sleep(0.1)  # a leads and collects for 0.3 s: b's moment joins its batch
        waiter = pool.submit(run, "b", 1.0)
        assert minter.entered.acquire(timeout=10)  # a is sending both
        t0 = time.monotonic()
        with pytest.raises(MintPending) as info:
            waiter.result(timeout=10)
        assert time.monotonic() - t0 < 1.5  # its wait, not the sender's
        assert info.value.details["reason"] == "pending"
        assert type(_step_error(info.value)).__name__ == "MintPending"  # the name the Mint state retries
        assert set(queue.state("8453#" + contract)[1]) == {"a", "b"}  # still taken by the live sender
        retry = pool.submit(run, "b", 20)  # Step Functions' retry of b's step
        time.sleep(0.2)
        assert minter.most_inside == 1 and not retry.done()  # it waits: it does not send b again
        minter.go.set()
        moments = {"a": sender.result(timeout=10), "b": retry.result(timeout=10)}
    assert sorted(minter.minted) == ["ar://a", "ar://b"]  # each once
    assert moments["b"] == deps.jobs.get("b").moment and moments["a"] == deps.jobs.get("a").moment
    assert queue.state("8453#" + contract)[:2] == ({}, {})


def test_a_moment_queued_again_after_it_was_recorded_is_never_sent_twice() -> None:
    """A re-run read its job just before the moment was recorded and queued it again just after its
    sender forgot it: the next sender finds the moment on the job after taking it and forgets it."""
    from imagemint.domain.batching import mint_batched, queue_name
    from imagemint.domain.ports import Moment

    deps = _batching_deps("old", "new")
    minter = BlockingMinter()
    minter.max_batch = 10
    minter.go.set()
    queue = deps.mint_queue
    contract = "0x" + "cd" * 20
    recorded = Moment(contractAddress=contract, tokenId="7", hash="0x7", chainId=8453).model_dump()
    deps.jobs.update("old", moment=recorded)
    queue.enqueue(queue_name(8453, contract), "old", {"uri": "ar://old", "creator": SIGNER, "at": 1.0})

    record = _recorder(deps)
    moment = mint_batched(
        deps, queue, minter, "new", "ar://new", SIGNER, contract, record, window_s=0, wait_s=5, poll_s=0.02
    )
    assert minter.minted == ["ar://new"]  # not ar://old again
    assert moment == deps.jobs.get("new").moment and deps.jobs.get("old").moment == recorded
    assert queue.state(queue_name(8453, contract))[:2] == ({}, {})


def test_done_forgets_a_whole_batch_and_only_what_the_sender_took(queue: Any) -> None:
    for j in ("a", "b", "c"):
        assert queue.enqueue("q", j, {"uri": f"ar://{j}", "creator": SIGNER, "at": 1.0})
    assert queue.lead("q", "s1", until=100.0, now=10.0)
    assert queue.take("q", "s1", ["a", "b"])
    queue.done("q", "s1", ["a", "b"])
    assert queue.state("q")[:2] == ({"c": {"uri": "ar://c", "creator": SIGNER, "at": 1.0}}, {})
    assert queue.take("q", "s1", ["c"])
    queue.done("q", "s1", ["c", "a"])  # a is not taken (any more): c is forgotten all the same
    assert queue.state("q")[1] == {}
    assert queue.enqueue("q", "d", {"uri": "ar://d", "creator": SIGNER, "at": 2.0})
    assert queue.take("q", "s1", ["d"])
    queue.done("q", "s2", ["d"])  # not d's sender: d stays taken
    assert queue.state("q")[1] == {"d": "s1"}
