"""Concurrent mints for one signer on anvil with the real Zora 1155 contracts (issue 14).

Each "process" is a thread with its own :class:`ZoraMinter`; they share what
separate Lambda processes share in AWS: the nonce allocator and the per-contract
mint queue (in-memory fakes with the DynamoDB items' rules) and the job store.
The mint step itself (:func:`imagemint.domain.provenance.mint`) runs in each.
At the end of every test the signer has no nonce gap (latest == pending ==
the allocator's counter) and every metadata URI was minted exactly once.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from chain_fixtures import AnvilNode, anvil  # noqa: F401  (fixture)
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3

from imagemint import wiring
from imagemint.adapters.chain.abi import CREATOR_1155_ABI
from imagemint.adapters.chain.zora import ZoraMinter
from imagemint.domain import provenance
from imagemint.domain.models import Account as ImAccount
from imagemint.domain.models import Job
from imagemint.errors import MintError
from imagemint.settings import Settings
from imagemint.testing.memory import (
    MemoryAccountStore,
    MemoryImageStore,
    MemoryJobStore,
    MemoryMintQueue,
    MemoryNonceAllocator,
)
from imagemint.wiring import Deps
from imagemint_dev.embedded.zora_deploy import deploy_zora_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zora(anvil: AnvilNode):  # noqa: F811
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 10}))
    return w3, deploy_zora_stack(w3, Account.from_key(anvil.private_key))


@pytest.fixture
def signer(zora) -> Any:
    w3, _ = zora
    account = Account.create()  # a fresh signer per test: its nonces are the test's alone
    w3.provider.make_request("anvil_setBalance", [account.address, hex(100 * 10**18)])
    return account


def make_minter(zora, signer, nonces, **overrides: Any) -> ZoraMinter:
    w3, addresses = zora
    options: dict[str, Any] = {
        "factory_address": addresses.factory,
        "signer": signer,
        "chain_id": 8453,
        "max_fee_gwei": 50,
        "max_priority_fee_gwei": 1,
        "gas_limit_cap": 5_000_000,
        "poll_latency_s": 0.01,
        "receipt_timeout_s": 20,
        "nonces": nonces,
        "stuck_after_s": 0.2,
        "gap_grace_s": 0.3,
        **overrides,
    }
    return ZoraMinter(w3, **options)


def uri() -> str:
    return "ar://" + secrets.token_urlsafe(32)[:43]


def assert_no_gap(w3: Web3, address: str, nonces: MemoryNonceAllocator) -> None:
    latest = w3.eth.get_transaction_count(address, "latest")
    assert w3.eth.get_transaction_count(address, "pending") == latest
    assert nonces.counters.get((address.lower(), 8453), latest) == latest


def minted_uris(w3: Web3, contract: str) -> list[str]:
    token = w3.eth.contract(address=contract, abi=CREATOR_1155_ABI)
    return [token.functions.uri(t).call() for t in range(1, token.functions.nextTokenId().call())]


class Minters:
    """A minter per thread (a process each), all built on the same allocator."""

    def __init__(self, build) -> None:
        self._build = build
        self._local = threading.local()

    def __call__(self, _settings: Any = None) -> ZoraMinter:
        if not hasattr(self._local, "m"):
            self._local.m = self._build()
        return self._local.m


@pytest.fixture
def service(zora, signer) -> Iterator[tuple[Deps, MemoryNonceAllocator]]:
    nonces = MemoryNonceAllocator()
    settings = Settings(jobs_table="j", accounts_table="a", bucket="b", mint_batch_window_s=0.3)
    deps = Deps(
        settings=settings,
        jobs=MemoryJobStore(),
        accounts=MemoryAccountStore(),
        images=MemoryImageStore(),
        mint_queue=MemoryMintQueue(),
    )
    minters = Minters(lambda: make_minter(zora, signer, nonces))

    class PerThread:  # wiring.minter() is cached per process; here each thread is a process
        def __getattr__(self, name: str) -> Any:
            return getattr(minters(), name)

    wiring.override(minter=PerThread())
    yield deps, nonces
    wiring.reset("minter")


def new_jobs(deps: Deps, creators: list[str], n: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        account_id = f"acct-{i % len(creators)}"
        if deps.accounts.get_account(account_id) is None:
            deps.accounts.create_account(
                ImAccount(account_id=account_id, name=account_id, wallet_address=creators[i % len(creators)])
            )
        job_id = f"job-{i}-{secrets.token_hex(3)}"
        deps.jobs.create(Job(job_id=job_id, account_id=account_id, dialect="legacy", model="gpt-image-2"))
        out.append((job_id, account_id, uri()))
    return out


def run_concurrently(deps: Deps, jobs: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(lambda j: provenance.mint(deps, *j), jobs))


@pytest.mark.parametrize("creators", [1, 4], ids=["one-creator", "four-creators"])
def test_twenty_concurrent_jobs_mint_once_each_batched_with_no_gap(zora, signer, service, creators) -> None:
    w3, _ = zora
    deps, nonces = service
    wallets = [Account.create().address for _ in range(creators)]
    jobs = new_jobs(deps, wallets, 20)
    moments = run_concurrently(deps, jobs)

    by_contract: dict[str, list[int]] = {}
    for (job_id, _, job_uri), moment in zip(jobs, moments, strict=True):
        job = deps.jobs.get(job_id)
        assert job.moment == moment
        token = w3.eth.contract(address=moment["contractAddress"], abi=CREATOR_1155_ABI)
        assert token.functions.uri(int(moment["tokenId"])).call() == job_uri
        by_contract.setdefault(moment["contractAddress"], []).append(int(moment["tokenId"]))
        cost = job.mint_cost
        assert cost["gas_share"] > 0 and int(cost["fee_share_wei"]) > 0 and cost["transactions"]
    assert len(by_contract) == creators
    for contract, ids in by_contract.items():
        assert sorted(ids) == list(range(1, len(ids) + 1))  # no token twice, none skipped
        assert len(minted_uris(w3, contract)) == len(ids)
    txs = {m["hash"] for m in moments}
    assert len(txs) < 20  # moments pending together shared transactions
    assert_no_gap(w3, signer.address, nonces)


def test_a_send_that_died_mid_sequence_is_filled_and_later_nonces_mine(zora, signer) -> None:
    w3, _ = zora
    nonces = MemoryNonceAllocator()
    minter = make_minter(zora, signer, nonces)
    contracts = [minter.ensure_contract(Account.create().address, None, f"gap {i}") for i in range(3)]
    start = w3.eth.get_transaction_count(signer.address, "latest")

    class Died(Exception):
        pass

    journal: list[dict[str, Any]] = []

    def die(record: dict[str, Any]) -> None:  # the process died after signing, before sending
        journal.append(record)
        raise Died

    first = minter.mint(uri(), signer.address, contracts[0])
    with pytest.raises(Died):
        minter.mint(uri(), signer.address, contracts[1], journal=die)
    # The next mint's nonce is above the gap: it waits behind it until the gap is filled.
    third = minter.mint(uri(), signer.address, contracts[2])
    assert journal[-1]["tx"]["nonce"] == start + 1
    assert w3.eth.get_transaction(third.hash)["nonce"] == start + 2
    assert w3.eth.get_transaction(first.hash)["nonce"] == start
    # The dead run's re-run finds its nonce taken by the filler: never mined, so it mints afresh once.
    assert minter.resume(journal[-1]) is None
    assert minted_uris(w3, contracts[1]) == []
    assert_no_gap(w3, signer.address, nonces)


def test_a_refused_send_fills_its_nonce(zora, signer) -> None:
    w3, _ = zora
    nonces = MemoryNonceAllocator()
    minter = make_minter(zora, signer, nonces)
    contract = minter.ensure_contract(signer.address, None, "refused")
    nonce = w3.eth.get_transaction_count(signer.address, "pending")
    # The counter is two ahead of the node (another process allocated and died): the gap is filled
    # as soon as a later transaction waits behind it.
    nonces.counters[(signer.address.lower(), 8453)] = nonce + 2
    moment = minter.mint(uri(), signer.address, contract)
    assert w3.eth.get_transaction(moment.hash)["nonce"] == nonce + 2
    assert_no_gap(w3, signer.address, nonces)


class Miner:
    """Automine off; once the first journalled transaction is in the pool, the next blocks' base fee
    is set to ``gwei`` and a block is mined every ``every`` seconds (a block time, without sleeps in
    the test itself). Use :meth:`journal` as the mint's journal.

    The base fee is set once and then falls by an eighth per block, as EIP-1559 has it; with
    ``pin=True`` it is set again before every block, so it stays at ``gwei`` (which the test may
    change with :meth:`set_gwei`, e.g. lower it so that a resumed transaction can be mined)."""

    def __init__(self, w3: Web3, gwei: int, every: float = 0.05, pin: bool = False) -> None:
        self.w3, self.gwei, self.every, self.pin = w3, gwei, every, pin
        self.seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def journal(self, record: dict[str, Any]) -> None:
        self.seen.append(record)

    def __enter__(self) -> Miner:
        self.w3.provider.make_request("evm_setAutomine", [False])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self.seen or not self._in_pool(self.seen[0]["tx"]["hash"]):
            if self._stop.wait(0.01):
                return
        self._set_base_fee()
        while not self._stop.wait(self.every):
            with self._lock:
                if self.pin:
                    self._set_base_fee()
                self.w3.provider.make_request("evm_mine", [])

    def set_gwei(self, gwei: int) -> None:
        """The next block's base fee, from now on (and for every block after it when pinned)."""
        with self._lock:
            self.gwei = gwei
            self._set_base_fee()

    def _set_base_fee(self) -> None:
        self.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(self.gwei * 10**9)])

    def _in_pool(self, tx_hash: str) -> bool:
        return bool(self.w3.provider.make_request("eth_getTransactionByHash", [tx_hash]).get("result"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.w3.provider.make_request("evm_setAutomine", [True])


def test_a_stuck_transaction_is_replaced_with_a_bumped_fee_within_the_cap(zora, signer) -> None:
    w3, _ = zora
    nonces = MemoryNonceAllocator()
    minter = make_minter(zora, signer, nonces)
    contract = minter.ensure_contract(signer.address, None, "stuck")
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    rise = max(5, 3 * base // 10**9 + 3)  # above what the first signature offers, below the 50 gwei cap
    with Miner(w3, rise) as miner:
        outcome = minter.mint_detailed(uri(), signer.address, contract, journal=miner.journal)
    seen = miner.seen
    assert len(seen) >= 2 and seen[-1]["tx"]["alts"]  # replaced: the journal knows every hash
    assert outcome.moment.hash == seen[-1]["tx"]["hash"]
    first = TypedTransaction.from_bytes(HexBytes(seen[0]["tx"]["raw"])).as_dict()
    mined = w3.eth.get_transaction(outcome.moment.hash)
    assert (
        first["maxFeePerGas"] < rise * 10**9 <= mined["maxFeePerGas"] <= 50 * 10**9
    )  # bumped, within the cap
    assert mined["maxPriorityFeePerGas"] > first["maxPriorityFeePerGas"] and mined["nonce"] == first["nonce"]
    assert int(outcome.costs[0]["fee_wei"]) > 0
    assert len(minted_uris(w3, contract)) == 1
    assert_no_gap(w3, signer.address, nonces)


def test_a_base_fee_above_the_cap_leaves_the_mint_resumable_and_it_mints_once(zora, signer) -> None:
    w3, _ = zora
    nonces = MemoryNonceAllocator()
    minter = make_minter(zora, signer, nonces)
    contract = minter.ensure_contract(signer.address, None, "above cap")
    with Miner(w3, 80, pin=True) as miner:  # the cap is 50 gwei; pinned, it never decays under it
        seen = miner.seen
        with pytest.raises(MintError) as info:
            minter.mint(uri(), signer.address, contract, journal=miner.journal)
        assert info.value.details["reason"] == "base_fee_above_cap"
        assert info.value.details["tx_hash"] == seen[-1]["tx"]["hash"]
        miner.set_gwei(1)
        moment = make_minter(zora, signer, nonces).resume(seen[-1])
    assert moment is not None and moment.hash == seen[-1]["tx"]["hash"]
    assert minted_uris(w3, contract) == [seen[-1]["uri"]]
    assert_no_gap(w3, signer.address, nonces)


def test_a_batch_sender_killed_after_sending_is_settled_by_each_job(zora, signer, service) -> None:
    """A crash between send and receipt: every job of the batch settles the shared transaction once."""
    w3, _ = zora
    deps, nonces = service
    jobs = new_jobs(deps, [signer.address], 3)
    minter = make_minter(zora, signer, nonces)
    contract = minter.ensure_contract(signer.address, None, f"imagemint moments of {jobs[0][1]}")
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        journals = [lambda r, j=j: deps.jobs.update(j[0], mint_tx=r) for j in jobs]
        with pytest.raises(MintError):  # "killed" waiting: it gives up before any block is mined
            make_minter(zora, signer, nonces, receipt_timeout_s=0.2).mint_many(
                contract, [(j[2], signer.address) for j in jobs], journals
            )
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])
    moments = run_concurrently(deps, jobs)  # each re-run settles its journalled part
    assert len({m["hash"] for m in moments}) == 1
    assert sorted(int(m["tokenId"]) for m in moments) == [1, 2, 3]
    assert len(minted_uris(w3, contract)) == 3
    assert_no_gap(w3, signer.address, nonces)
