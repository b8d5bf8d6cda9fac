"""chain_mode=inprocess (issue 15): the In Process adapter against its protocol stub, and the mint step's
journal around it (one moment per job, whatever answer was lost).

The stub (``tests/stubs/inprocess_stub.py``) is a real HTTP server on 127.0.0.1; the mint step runs
with in-memory stores and the adapter put in through ``wiring.override(minter=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from stubs.inprocess_stub import InProcessStub

from imagemint import wiring
from imagemint.adapters.chain.inprocess import InProcessMinter, UnreadChain
from imagemint.domain import auth, provenance
from imagemint.domain.models import Job
from imagemint.domain.ports import Moment
from imagemint.errors import MintError
from imagemint.settings import Settings
from imagemint.wiring import Deps

pytestmark = pytest.mark.loopback_sockets

WALLET = "0x" + "ab" * 20
DEFAULT = "0x" + "cd" * 20


@pytest.fixture
def stub() -> Iterator[InProcessStub]:
    with InProcessStub() as s:
        yield s


def minter(stub: InProcessStub, *, budget_s: float = 3.0, reader: Any = None) -> InProcessMinter:
    return InProcessMinter(stub.base_url, default_account=DEFAULT, budget_s=budget_s, reader=reader)


@pytest.fixture
def ip_deps(deps: Deps, stub: InProcessStub) -> Iterator[Deps]:
    deps.settings = deps.settings.model_copy(
        update={
            "chain_mode": "inprocess",
            "inprocess_base_url": stub.base_url,
            "inprocess_lookup_grace_s": 120,
        }
    )
    wiring.override(minter=minter(stub))
    yield deps
    wiring.reset("minter")


def new_job(deps: Deps, job_id: str, account_id: str) -> None:
    deps.jobs.create(Job(job_id=job_id, account_id=account_id, dialect="legacy", model="gpt-image-2"))


def account(deps: Deps, name: str, wallet: str | None = WALLET) -> str:
    acct, _ = auth.create_account(deps.accounts, deps.settings, name=name, credits=10, wallet_address=wallet)
    return acct.account_id


def deadline() -> float:
    return time.monotonic() + 3.0


# ----------------------------------------------------------------------------- the adapter


def test_simulate_then_create_new_collection_then_reuse_it(stub: InProcessStub) -> None:
    m = minter(stub)
    sent: list[str] = []
    first = m.create(
        m.request("ar://one", WALLET, None, "imagemint moments of A", "ar://one"),
        before_send=lambda: sent.append("journal"),
        deadline=deadline(),
    )
    assert [r.route for r in stub.requests] == ["simulate", "create"] and sent == ["journal"]
    body = stub.on("create")[0].json
    assert body["contract"] == {"name": "imagemint moments of A", "uri": "ar://one"}
    assert body["account"] == body["token"]["payoutRecipient"] == WALLET
    assert body["token"]["tokenMetadataURI"] == "ar://one" and body["token"]["mintToCreatorCount"] == 1
    second = m.create(
        m.request("ar://two", WALLET, first.contractAddress, "ignored", "ignored"),
        before_send=lambda: None,
        deadline=deadline(),
    )
    assert stub.on("create")[1].json["contract"] == {"address": first.contractAddress}
    assert second.contractAddress == first.contractAddress and len(stub.collections) == 1
    assert (first.tokenId, second.tokenId) == ("1", "2") and first.chainId == 8453
    assert first.hash != second.hash and len(first.hash) == 66
    found = m.find(WALLET, first.contractAddress, "ar://two", deadline=deadline())
    assert found == Moment(contractAddress=first.contractAddress, tokenId="2", hash="", chainId=8453)
    assert m.find(WALLET, None, "ar://none", deadline=deadline()) is None


def test_invalid_input_is_a_400_in_the_api_shape_and_refused(stub: InProcessStub) -> None:
    m = minter(stub)
    body = m.request("ar://bad", WALLET, None, "n", "ar://bad")
    body["account"] = "0x12"
    del body["token"]["createReferral"]
    body["contract"] = {"name": "only a name"}
    called: list[int] = []
    with pytest.raises(MintError) as err:
        m.create(body, before_send=lambda: called.append(1), deadline=deadline())
    assert err.value.details["reason"] == "refused" and err.value.details["sent"] is False
    assert called == [] and [r.route for r in stub.requests] == ["simulate"]  # never sent to create
    answer = stub.requests[0]
    from stubs.inprocess_stub import validate

    issues = validate(answer.json).errors
    assert {"field": "account", "message": "Invalid"} in issues
    assert {"field": "token.createReferral", "message": "Required"} in issues
    assert any(i["field"] == "contract.contract" for i in issues)
    assert "answered 400: Invalid input" in err.value.message and "account: Invalid" in err.value.message


def test_unknown_collection_fails_as_the_chain_does(stub: InProcessStub) -> None:
    m = minter(stub)
    with pytest.raises(MintError) as err:
        m.create(
            m.request("ar://x", WALLET, "0x" + "11" * 20, "n", "u"),
            before_send=lambda: None,
            deadline=deadline(),
        )
    assert err.value.details["reason"] == "upstream_error" and err.value.details["sent"] is False
    assert "reverted" in err.value.message


@pytest.mark.parametrize(
    ("fault", "on", "reason", "sent"),
    [
        ("server_error", "simulate", "upstream_error", False),
        ("server_error", "create", "upstream_error", True),
        ("lost_after_create", "create", "timeout", True),
        ("garbled_after_create", "create", "bad_answer", True),
    ],
)
def test_faults_map_to_mint_errors(stub: InProcessStub, fault: str, on: str, reason: str, sent: bool) -> None:
    m = minter(stub)
    stub.inject(fault, on=on, seconds=4)  # answers long after the 1 s deadline
    with pytest.raises(MintError) as err:
        m.create(
            m.request("ar://f", WALLET, None, "n", "ar://f"),
            before_send=lambda: None,
            deadline=time.monotonic() + 1.0,
        )
    assert (err.value.details["reason"], err.value.details["sent"]) == (reason, sent)
    created = 1 if fault.endswith("after_create") else 0
    assert stub.creates_per_uri()["ar://f"] == created


def test_nothing_is_sent_past_the_budget(stub: InProcessStub) -> None:
    m = minter(stub)
    with pytest.raises(MintError) as err:
        m.create(m.request("ar://late", WALLET, None, "n", "u"), before_send=lambda: None, deadline=0.0)
    assert err.value.details["sent"] is False and stub.requests == []


def test_a_stopped_service_created_nothing() -> None:
    stub = InProcessStub().start()
    url = stub.base_url
    stub.stop()
    m = InProcessMinter(url, budget_s=1.0)
    with pytest.raises(MintError) as err:
        m.create(
            m.request("ar://down", WALLET, None, "n", "u"), before_send=lambda: None, deadline=deadline()
        )
    assert err.value.details["sent"] is False


def test_onchain_check_reads_uri_back_only_with_a_reader(stub: InProcessStub) -> None:
    moment = Moment(contractAddress=WALLET, tokenId="3", hash="0x" + "00" * 32, chainId=8453)

    class Reader:
        def token_uri(self, contract: str, token_id: int) -> str:
            return "ar://good" if (contract, token_id) == (WALLET, 3) else "?"

    assert minter(stub, reader=Reader()).check_onchain(moment, "ar://good") == {
        "checked": True,
        "verified": True,
        "onchain_uri": "ar://good",
    }
    assert minter(stub, reader=Reader()).check_onchain(moment, "ar://other")["verified"] is False
    unchecked = minter(stub).check_onchain(moment, "ar://good")
    assert unchecked["checked"] is False and "No RPC URL" in unchecked["note"]


# ----------------------------------------------------------------------------- the mint step


def test_one_collection_per_account_kept_on_the_account(ip_deps: Deps, stub: InProcessStub) -> None:
    a = account(ip_deps, "Alice")
    new_job(ip_deps, "j1", a)
    new_job(ip_deps, "j2", a)
    first = provenance.mint(ip_deps, "j1", a, "ar://m1")
    second = provenance.mint(ip_deps, "j2", a, "ar://m2")
    assert first["contractAddress"] == second["contractAddress"]
    assert (first["tokenId"], second["tokenId"]) == ("1", "2")
    key = f"inprocess#8453#{WALLET}"
    assert ip_deps.accounts.get_collection(a, key) == first["contractAddress"]
    assert stub.on("create")[0].json["contract"]["name"] == "imagemint moments of Alice"
    job = ip_deps.jobs.get("j2")
    assert job.moment == second and job.mint_tx["stage"] == "sent" and job.mint_tx["uri"] == "ar://m2"
    assert job.mint_via["service"] == "inprocess" and job.mint_via["checked"] is False
    assert job.mint_cost["paid_by"] == "inprocess" and job.mint_cost["fee_share_wei"] == "0"
    assert provenance.mint(ip_deps, "j2", a, "ar://m2") == second  # recorded: nothing sent again
    assert len(stub.on("create")) == 2


def test_an_account_without_wallet_uses_the_default_or_fails(ip_deps: Deps, stub: InProcessStub) -> None:
    a = account(ip_deps, "NoWallet", wallet=None)
    new_job(ip_deps, "jd", a)
    provenance.mint(ip_deps, "jd", a, "ar://d")
    assert stub.on("create")[0].json["account"] == DEFAULT
    wiring.override(minter=InProcessMinter(stub.base_url, default_account="", budget_s=3))
    new_job(ip_deps, "je", a)
    with pytest.raises(MintError) as err:
        provenance.mint(ip_deps, "je", a, "ar://e")
    assert (
        err.value.details["reason"] == "config" and err.value.param == "IMAGEMINT_INPROCESS_DEFAULT_ACCOUNT"
    )


def test_a_lost_answer_is_found_on_the_timeline_not_created_again(ip_deps: Deps, stub: InProcessStub) -> None:
    a = account(ip_deps, "Lost")
    new_job(ip_deps, "jl", a)
    wiring.override(minter=minter(stub, budget_s=1.0))
    stub.inject("lost_after_create", on="create", seconds=3)
    with pytest.raises(MintError):
        provenance.mint(ip_deps, "jl", a, "ar://lost")
    assert ip_deps.jobs.get("jl").mint_tx["stage"] == "sent"
    moment = provenance.mint(ip_deps, "jl", a, "ar://lost")  # the re-run
    assert stub.creates_per_uri()["ar://lost"] == 1 and len(stub.on("create")) == 1
    (made,) = stub.moments_of("ar://lost")
    assert (moment["contractAddress"], moment["tokenId"], moment["hash"]) == (made.address, "1", "")
    job = ip_deps.jobs.get("jl")
    assert job.mint_via["answer_lost"] is True and "no transaction hash" in job.mint_via["note_hash"]
    # The collection the lost answer made is the account's from now on.
    new_job(ip_deps, "jl2", a)
    assert provenance.mint(ip_deps, "jl2", a, "ar://after")["contractAddress"] == made.address


def test_an_unknown_answer_not_listed_waits_for_the_grace_then_creates_once(
    ip_deps: Deps, stub: InProcessStub
) -> None:
    a = account(ip_deps, "Lagging")
    new_job(ip_deps, "jg", a)
    stub.inject("server_error", on="create")  # a 5xx: In Process may or may not have created it
    with pytest.raises(MintError) as err:
        provenance.mint(ip_deps, "jg", a, "ar://lag")
    assert err.value.details["reason"] == "upstream_error"
    with pytest.raises(MintError) as err:  # not listed, sent moments ago: nothing is created
        provenance.mint(ip_deps, "jg", a, "ar://lag")
    assert err.value.details["reason"] == "unsettled" and len(stub.on("create")) == 1
    ip_deps.settings = ip_deps.settings.model_copy(update={"inprocess_lookup_grace_s": 0})
    moment = provenance.mint(ip_deps, "jg", a, "ar://lag")
    assert stub.creates_per_uri()["ar://lag"] == 1 and moment["tokenId"] == "1"


def test_a_refused_create_is_journalled_as_not_created(ip_deps: Deps, stub: InProcessStub) -> None:
    a = account(ip_deps, "Refused")
    new_job(ip_deps, "jr", a)
    stub.inject("http", on="create", status=400, body={"message": "Invalid input", "errors": []})
    with pytest.raises(MintError) as err:
        provenance.mint(ip_deps, "jr", a, "ar://refused")
    assert err.value.details["reason"] == "refused"
    assert ip_deps.jobs.get("jr").mint_tx["stage"] == "not_created"
    timeline_before = len(stub.on("timeline"))
    provenance.mint(ip_deps, "jr", a, "ar://refused")  # created at once: no lookup needed
    assert len(stub.on("timeline")) == timeline_before and stub.creates_per_uri()["ar://refused"] == 1


# ----------------------------------------------------------------------------- settings and wiring


def test_settings_accept_inprocess_and_refuse_plain_http_elsewhere(settings: Settings) -> None:
    base = settings.model_dump()
    ok = Settings(**{**base, "chain_mode": "inprocess", "inprocess_base_url": "http://127.0.0.1:9/"})
    assert ok.inprocess_base_url == "http://127.0.0.1:9" and Settings(**base).inprocess_base_url.startswith(
        "https"
    )
    with pytest.raises(ValidationError):
        Settings(**{**base, "inprocess_base_url": "http://inprocess.world"})
    with pytest.raises(ValidationError):
        Settings(**{**base, "inprocess_timeout_s": 30})  # past the Mint task's 20 s


def test_wiring_builds_the_inprocess_minter_and_an_honest_reader(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGEMINT_CHAIN_RPC_URL", raising=False)
    s = deps.settings.model_copy(update={"chain_mode": "inprocess", "inprocess_default_account": DEFAULT})
    wiring.reset("minter", "chain_reader")
    try:
        m = wiring.minter(s)
        assert isinstance(m, InProcessMinter) and m.default_account == DEFAULT and m.reader is None
        reader = wiring.chain_reader(s)
        assert isinstance(reader, UnreadChain)
        with pytest.raises(MintError, match="No RPC URL"):
            reader.token_uri(WALLET, 1)
    finally:
        wiring.reset("minter", "chain_reader")
