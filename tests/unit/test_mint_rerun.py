"""Minting survives a re-run after a crash: the signed transaction is journalled before it is sent, and a
re-run settles it (its receipt, or the same raw transaction sent again) before anything new is signed.

On the embedded chain (eth-tester + py-evm with the real Zora contracts). A run "killed" after the
journal and before the send is a journal callable that records the pending mint and then raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from imagemint import wiring
from imagemint.adapters.chain.abi import CREATOR_1155_ABI
from imagemint.adapters.chain.zora import ZoraMinter
from imagemint.domain import provenance
from imagemint.domain.models import Job
from imagemint.domain.ports import MomentMinter
from imagemint.errors import MintError
from imagemint.wiring import Deps
from imagemint_dev.embedded.chain import LocalChain


class Killed(Exception):
    """The run died here."""


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    chain = LocalChain()
    chain.start()
    return chain


@pytest.fixture(scope="module")
def contract(chain: LocalChain) -> str:
    minter = chain.minter()
    return minter.ensure_contract(minter.signer.address, None, "re-runs")


def next_id(chain: LocalChain, contract: str) -> int:
    assert chain.w3 is not None
    return int(chain.w3.eth.contract(address=contract, abi=CREATOR_1155_ABI).functions.nextTokenId().call())


def balance(chain: LocalChain, contract: str, owner: str, token_id: int) -> int:
    assert chain.w3 is not None
    token = chain.w3.eth.contract(address=contract, abi=CREATOR_1155_ABI)
    return int(token.functions.balanceOf(owner, token_id).call())


def killed_after_journal(minter: ZoraMinter, uri: str, contract: str, *, stage: str = "multicall") -> dict:
    """Run a mint that dies once the pending record of ``stage`` is journalled (before that tx is sent)."""
    journal: list[dict[str, Any]] = []

    def die(record: dict[str, Any]) -> None:
        journal.append(record)
        if record["stage"] == stage:
            raise Killed

    with pytest.raises(Killed):
        minter.mint(uri, minter.signer.address, contract, journal=die)
    return journal[-1]


def test_the_minter_keeps_the_port(chain: LocalChain) -> None:
    assert isinstance(chain.minter(), MomentMinter)


def test_the_journal_is_written_before_the_transaction_is_sent(chain: LocalChain, contract: str) -> None:
    minter = chain.minter()
    assert chain.w3 is not None
    seen: list[tuple[dict[str, Any], int]] = []

    def journal(record: dict[str, Any]) -> None:  # what the chain looks like when the record is saved
        seen.append((record, chain.w3.eth.get_transaction_count(minter.signer.address, "latest")))

    before = next_id(chain, contract)
    moment = minter.mint("ar://journalled", minter.signer.address, contract, journal=journal)
    ((record, count_at_journal),) = seen
    assert count_at_journal == record["tx"]["nonce"]  # not sent yet
    assert record["stage"] == "multicall" and record["token_id"] == str(before) == moment.tokenId
    assert record["tx"]["hash"] == moment.hash and record["tx"]["raw"].startswith("0x")
    assert (record["uri"], record["contract"], record["chain_id"]) == ("ar://journalled", contract, 8453)


def test_resume_of_a_mined_mint_mints_nothing(chain: LocalChain, contract: str) -> None:
    minter = chain.minter()
    journal: list[dict[str, Any]] = []
    moment = minter.mint("ar://mined", minter.signer.address, contract, journal=journal.append)
    after = next_id(chain, contract)
    assert minter.resume(journal[-1]) == moment  # the run died after sending: the receipt is there
    assert next_id(chain, contract) == after


def test_resume_of_a_mint_killed_before_sending_sends_the_same_transaction(
    chain: LocalChain, contract: str
) -> None:
    minter = chain.minter()
    before = next_id(chain, contract)
    pending = killed_after_journal(minter, "ar://killed-before-send", contract)
    assert next_id(chain, contract) == before  # nothing was sent
    moment = chain.minter().resume(pending)
    assert moment is not None and moment.hash == pending["tx"]["hash"] and moment.tokenId == str(before)
    assert next_id(chain, contract) == before + 1
    assert chain.minter().resume(pending) == moment  # and again: one token
    assert next_id(chain, contract) == before + 1


def test_resume_of_a_transaction_whose_nonce_was_taken_returns_none(chain: LocalChain, contract: str) -> None:
    minter = chain.minter()
    pending = killed_after_journal(minter, "ar://never-sent", contract)
    other = minter.mint("ar://took-the-nonce", minter.signer.address, contract)
    before = next_id(chain, contract)
    assert minter.resume(pending) is None  # never mined, never can be: the caller mints afresh
    assert next_id(chain, contract) == before and int(other.tokenId) == before - 1


def test_two_transaction_mint_resumes_at_either_step(chain: LocalChain, contract: str) -> None:
    minter = chain.minter(batch=False)
    creator = minter.signer.address
    # Killed before setupNewToken was sent: the re-run sends it, then the adminMint.
    before = next_id(chain, contract)
    pending = killed_after_journal(minter, "ar://two-step-a", contract, stage="setup")
    steps: list[str] = []
    moment = minter.resume(pending, journal=lambda r: steps.append(r["stage"]))
    assert moment is not None and moment.tokenId == str(before) and steps == ["admin_mint"]
    assert next_id(chain, contract) == before + 1 and balance(chain, contract, creator, before) == 1

    # Killed after the token was set up, before its adminMint was sent: only the adminMint is sent.
    before = next_id(chain, contract)
    pending = killed_after_journal(minter, "ar://two-step-b", contract, stage="admin_mint")
    assert pending["token_id"] == str(before) and len(pending["earlier"]) == 1
    assert next_id(chain, contract) == before + 1 and balance(chain, contract, creator, before) == 0
    moment = minter.resume(pending)
    assert moment is not None and moment.tokenId == str(before) and moment.hash == pending["tx"]["hash"]
    assert next_id(chain, contract) == before + 1 and balance(chain, contract, creator, before) == 1
    assert minter.resume(pending) == moment and balance(chain, contract, creator, before) == 1


def test_unreadable_or_foreign_records_are_refused(chain: LocalChain, contract: str) -> None:
    minter = chain.minter()
    journal: list[dict[str, Any]] = []
    minter.mint("ar://for-records", minter.signer.address, contract, journal=journal.append)
    with pytest.raises(MintError) as info:
        minter.resume({"stage": "multicall"})
    assert info.value.details["reason"] == "config"
    with pytest.raises(MintError) as info:
        minter.resume({**journal[-1], "stage": "burn"})
    assert info.value.details["reason"] == "config"
    with pytest.raises(MintError) as info:
        minter.resume({**journal[-1], "chain_id": 84532})
    assert info.value.details["reason"] == "chain_id_mismatch"


# ----------------------------------------------------------------------------- the pipeline step


@pytest.fixture
def mint_deps(deps: Deps) -> Iterator[Deps]:
    """The mint step on the process's embedded chain (``chain_mode=embedded``)."""
    deps.settings = deps.settings.model_copy(update={"chain_mode": "embedded"})
    wiring.reset("archive_store", "minter")
    yield deps
    wiring.reset("archive_store", "minter")


def chain_of(deps: Deps) -> tuple[Any, ZoraMinter]:
    minter = wiring.minter(deps.settings)
    return minter.w3, minter


def test_mint_step_run_twice_mints_once(mint_deps: Deps, account) -> None:
    acct, _ = account
    mint_deps.jobs.create(Job(job_id="job-mint", account_id=acct.account_id, dialect="legacy", model="m"))
    first = provenance.mint(mint_deps, "job-mint", acct.account_id, "ar://step-twice")
    w3, _ = chain_of(mint_deps)
    token = w3.eth.contract(address=first["contractAddress"], abi=CREATOR_1155_ABI)
    after = token.functions.nextTokenId().call()
    assert provenance.mint(mint_deps, "job-mint", acct.account_id, "ar://step-twice") == first
    assert token.functions.nextTokenId().call() == after == int(first["tokenId"]) + 1
    job = mint_deps.jobs.get("job-mint")
    assert job.moment == first and job.mint_tx["tx"]["hash"] == first["hash"]


def test_mint_step_killed_after_sending_settles_the_journalled_tx(mint_deps: Deps, account) -> None:
    acct, _ = account
    mint_deps.jobs.create(Job(job_id="job-sent", account_id=acct.account_id, dialect="legacy", model="m"))
    _, minter = chain_of(mint_deps)
    contract = minter.ensure_contract(minter.signer.address, None, f"imagemint moments of {acct.name}")
    # The killed run: minted, journalled on the job, died before recording the moment.
    journal: list[dict[str, Any]] = []
    sent = minter.mint("ar://sent-then-killed", minter.signer.address, contract, journal=journal.append)
    mint_deps.jobs.update("job-sent", mint_tx=journal[-1])
    before = next_id_of(minter, contract)
    out = provenance.mint(mint_deps, "job-sent", acct.account_id, "ar://sent-then-killed")
    assert out == sent.model_dump() and mint_deps.jobs.get("job-sent").moment == out
    assert next_id_of(minter, contract) == before


def next_id_of(minter: ZoraMinter, contract: str) -> int:
    return int(minter.w3.eth.contract(address=contract, abi=CREATOR_1155_ABI).functions.nextTokenId().call())
