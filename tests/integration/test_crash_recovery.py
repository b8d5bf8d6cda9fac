"""Killing a provenance step mid-way loses nothing and duplicates nothing.

The local runtime's Lambda seam kills the ArchiveStep or MintStep function as
Lambda reports a dead runtime (``Runtime.ExitError``): before its handler runs,
or after it ran to the end (its Arweave item stored, its token minted) without
returning. The state machine's Retry runs the same step again with the same
input; the job must end SUCCEEDED with exactly one Arweave item per image, one
metadata item and one token. When every attempt dies, the job is PARTIAL with
the image kept and ``resume_from`` set.

Its own module: one local runtime per process at a time (moto's state is
process-wide). The end has the same re-run checks against the real peers:
a journalled Arweave transaction posted again to ArLocal, and a journalled
mint settled on anvil after the process "died" waiting for its receipt.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from arweave_fixtures import arlocal, http_get, mine  # noqa: F401  (arlocal is a fixture)
from arweave_fixtures import mint as fund_arweave
from chain_fixtures import AnvilNode, anvil  # noqa: F401  (anvil is a fixture)

from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = "ArchiveStepFunction"
MINT = "MintStepFunction"
#: A legacy request invokes Archive and Mint once each with {"warm": true} while Generate runs
#: (GenerateAndWarm) before any real step: crash plans let that invocation through.
WARM = 1


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("crash"), port=0)
    yield rt
    rt.stop()


@pytest.fixture
def rt(runtime: LocalRuntime):
    runtime.stack.clear_crashes()
    yield runtime
    runtime.stack.clear_crashes()


# ----------------------------------------------------------------------------- helpers


def generate(rt: LocalRuntime, prompt: str) -> tuple[dict[str, Any], Any, float]:
    """The legacy endpoint (archive + mint), its job record, and the seconds it took."""
    query = urllib.parse.urlencode({"prompt": prompt, "account_id": rt.account["account_id"]})
    started = time.perf_counter()
    with urllib.request.urlopen(f"{rt.base_url}/api/image/generate?{query}", timeout=120) as resp:
        assert resp.status == 200
        body = json.loads(resp.read())
    took = time.perf_counter() - started
    return body, job_for(rt, prompt), took


def job_for(rt: LocalRuntime, prompt: str) -> Any:
    from imagemint.wiring import get_deps

    ddb = rt.stack.client("dynamodb")
    items = ddb.scan(TableName=rt.stack.env["IMAGEMINT_JOBS_TABLE"])["Items"]
    ids = [i["job_id"]["S"] for i in items if i["request"]["M"]["prompt"]["S"] == prompt]
    assert len(ids) == 1, ids
    return get_deps().jobs.get(ids[0])


def archived_items(rt: LocalRuntime, job_id: str) -> list[dict[str, str]]:
    """The decoded tags of every item the embedded Arweave store holds for ``job_id``."""
    s3 = rt.stack.client("s3")
    bucket = rt.stack.env["IMAGEMINT_BUCKET"]
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="arweave/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".json"):
                continue
            header = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            tags = {_b64(t["name"]): _b64(t["value"]) for t in header["tags"]}  # wire form: base64url
            if tags.get("Job-Id") == job_id:
                items.append({"id": header["id"], **tags})
    return items


def _b64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def tokens_with_uri(uri: str) -> list[tuple[str, int]]:
    """(contract, token id) of every SetupNewToken event on the embedded chain whose URI is ``uri``."""
    from imagemint.adapters.chain.abi import CREATOR_1155_ABI
    from imagemint_dev.embedded.chain import default_local_chain

    w3, _, _ = default_local_chain().start()
    event = w3.eth.contract(abi=CREATOR_1155_ABI).events.SetupNewToken()
    topic = w3.keccak(text="SetupNewToken(uint256,address,string,uint256)").to_0x_hex()
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "topics": [topic]})
    found = []
    for entry in logs:
        ev = event.process_log(entry)
        if ev["args"]["newURI"] == uri:
            found.append((ev["address"], int(ev["args"]["tokenId"])))
    return found


def next_token_id(contract: str) -> int:
    from imagemint.adapters.chain.abi import CREATOR_1155_ABI
    from imagemint_dev.embedded.chain import default_local_chain

    w3, _, _ = default_local_chain().start()
    return int(w3.eth.contract(address=contract, abi=CREATOR_1155_ABI).functions.nextTokenId().call())


def assert_complete(rt: LocalRuntime, res: dict[str, Any], job: Any) -> None:
    """SUCCEEDED with the image, one Arweave item per image + one metadata item, one token."""
    assert job.status == "SUCCEEDED", (job.status, job.provenance_error)
    assert job.resume_from is None
    assert res["images"][0]["base64"] and res["imageUrl"]
    ar = res["arweaveResult"]
    assert ar["id"] and res["imageUrl"].endswith("/" + ar["id"])
    items = archived_items(rt, job.job_id)
    images = [i for i in items if "Image-Index" in i]
    metadata = [i for i in items if "Image-Index" not in i]
    assert [i["id"] for i in images] == [ar["id"]]  # one item for the one image: the one returned
    assert len(metadata) == 1 and metadata[0]["Content-Type"] == "application/json"
    moment = res["moment"]
    assert moment and job.moment == moment
    metadata_uri = f"ar://{metadata[0]['id']}"
    assert tokens_with_uri(metadata_uri) == [(moment["contractAddress"], int(moment["tokenId"]))]
    assert next_token_id(moment["contractAddress"]) == int(moment["tokenId"]) + 1


# ----------------------------------------------------------------------------- tests


def test_crash_injection_answers_as_lambda_does(rt: LocalRuntime) -> None:
    lam = rt.stack.client("lambda")
    name = rt.stack.function_name(ARCHIVE)
    rt.inject_crash(ARCHIVE, after=False)
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "nothing"}).encode())
    payload = json.loads(resp["Payload"].read())
    assert resp.get("FunctionError")  # a function error (moto says "Handled" where Lambda says "Unhandled")
    assert payload["errorType"] == "Runtime.ExitError"
    assert "Runtime exited" in payload["errorMessage"]
    assert rt.stack.crash_count(ARCHIVE) == 1
    with pytest.raises(KeyError):
        rt.inject_crash("NoSuchFunction", after=True)


@pytest.mark.parametrize("after", [True, False], ids=["after", "before"])
def test_archive_step_killed_once(rt: LocalRuntime, after: bool) -> None:
    rt.inject_crash(ARCHIVE, after=after, skip=WARM)
    res, job, took = generate(rt, f"archive killed {'after' if after else 'before'}")
    print(f"\n[crash] ArchiveStep killed {'after' if after else 'before'}: {took:.2f} s")
    assert rt.stack.crash_count(ARCHIVE) == 1
    assert_complete(rt, res, job)
    assert getattr(job, "archive_tx_0", None) and getattr(job, "archive_tx_metadata", None)


def test_metadata_archive_killed_after_it_stored(rt: LocalRuntime) -> None:
    # The Map's one image is the first real ArchiveStep invocation, the metadata the second: let the
    # warm-up and the image through, then kill the metadata run after it stored its item.
    rt.inject_crash(ARCHIVE, after=True, skip=WARM + 1)
    res, job, _ = generate(rt, "metadata killed after")
    assert rt.stack.crash_count(ARCHIVE) == 1
    assert_complete(rt, res, job)


@pytest.mark.parametrize("after", [True, False], ids=["after", "before"])
def test_mint_step_killed_once(rt: LocalRuntime, after: bool) -> None:
    rt.inject_crash(MINT, after=after, skip=WARM)
    res, job, took = generate(rt, f"mint killed {'after' if after else 'before'}")
    print(f"\n[crash] MintStep killed {'after' if after else 'before'}: {took:.2f} s")
    assert rt.stack.crash_count(MINT) == 1
    assert_complete(rt, res, job)
    assert job.mint_tx["tx"]["hash"] == res["moment"]["hash"]


def attempts(state: str) -> int:
    """1 + the MaxAttempts of the state's Retry that matches a dead runtime (the ASL's own numbers)."""
    asl = json.loads((ROOT / "statemachine" / "generate.asl.json").read_text())
    states = dict(asl["States"])
    for s in asl["States"].values():
        states.update((s.get("ItemProcessor") or {}).get("States") or {})
    (retry,) = [r for r in states[state]["Retry"] if "Runtime.ExitError" in r["ErrorEquals"]]
    return 1 + int(retry["MaxAttempts"])


def test_mint_killed_on_every_attempt_after_minting_succeeds_with_its_one_token(rt: LocalRuntime) -> None:
    """Every attempt of the Mint step dies after its handler ran to the end: the first one minted the
    moment and recorded it on the job, the retries found it there and minted nothing more, and the
    Record step takes the recorded moment (imagemint.domain.steps.record_state): SUCCEEDED."""
    rt.inject_crash(MINT, after=True, times=10, skip=WARM)  # more than the Retry allows
    res, job, took = generate(rt, "mint killed every time")
    print(f"\n[crash] MintStep killed on every attempt: {took:.2f} s")
    assert rt.stack.crash_count(MINT) == attempts("Mint")
    assert job.status == "SUCCEEDED" and job.resume_from is None
    assert res["images"][0]["base64"] and res["arweaveResult"]["id"]
    assert not any("Minting the moment failed" in w for w in res["warnings"])
    metadata = [i for i in archived_items(rt, job.job_id) if "Image-Index" not in i]
    assert len(metadata) == 1
    tokens = tokens_with_uri(f"ar://{metadata[0]['id']}")
    assert len(tokens) == 1  # minted once
    assert job.moment["tokenId"] == str(tokens[0][1]) and job.moment["contractAddress"] == tokens[0][0]
    assert res["moment"]["tokenId"] == job.moment["tokenId"] and job.result["moment"] == job.moment


def test_mint_killed_on_every_attempt_before_running_is_partial(rt: LocalRuntime) -> None:
    rt.inject_crash(MINT, after=False, times=10, skip=WARM)
    res, job, _ = generate(rt, "mint killed before it ran")
    assert rt.stack.crash_count(MINT) == attempts("Mint")
    assert job.status == "PARTIAL" and job.resume_from == "mint"
    assert res["images"][0]["base64"] and res["arweaveResult"]["id"]  # the image and its archive are kept
    assert res["moment"] is None and getattr(job, "moment", None) is None
    assert any("Minting the moment failed" in w for w in res["warnings"])


def test_archive_killed_on_every_attempt_is_partial_and_keeps_the_image(rt: LocalRuntime) -> None:
    rt.inject_crash(ARCHIVE, after=True, times=10, skip=WARM)
    res, job, _ = generate(rt, "archive killed every time")
    assert rt.stack.crash_count(ARCHIVE) == attempts("ArchiveImage")
    assert job.status == "PARTIAL" and job.resume_from == "archive"
    assert res["images"][0]["base64"] and res["arweaveResult"] is None and res["moment"] is None
    # Every attempt stored the image's item: the same signed transaction each time, so one item.
    items = archived_items(rt, job.job_id)
    assert len(items) == 1 and items[0]["Image-Index"] == "0"
    assert job.archive_0 == items[0]["id"]


# ----------------------------------------------------------------------------- real peers


class Journal:
    """One journal slot (the job record's ``archive_tx_<i>`` field, in the pipeline)."""

    def __init__(self, header: str | None = None) -> None:
        self.header = header

    def load(self) -> str | None:
        return self.header

    def save(self, header: str) -> None:
        self.header = header


def test_journalled_tx_posted_again_to_arlocal_is_one_item(arlocal: str) -> None:  # noqa: F811
    from imagemint.adapters.arweave.gateway_store import GatewayArchiveStore
    from imagemint.adapters.arweave.store import archive_once
    from imagemint.adapters.arweave.wallet import generate_wallet, wallet_address

    jwk = generate_wallet()
    fund_arweave(arlocal, wallet_address(jwk), 10**14)
    store = GatewayArchiveStore(jwk, arlocal, confirm_timeout_s=5.0, poll_interval_s=0.05)
    journal = Journal()
    data = b"\x89PNG" + bytes(range(256)) * 1200  # two chunks: header, then /chunk uploads
    tags = [("Content-Type", "image/png"), ("Job-Id", f"crash-{time.time_ns()}")]

    first = archive_once(store, data, tags, load=journal.load, save=journal.save)
    again = archive_once(store, data, tags, load=journal.load, save=journal.save)  # the re-run
    mine(arlocal)
    third = archive_once(store, data, tags, load=journal.load, save=journal.save)
    assert first == again == third
    assert store.read(first.id) == (data, "image/png")
    query = (
        'query($job: String!) { transactions(tags: [{name: "Job-Id", values: [$job]}])'
        " { edges { node { id } } } }"
    )
    req = urllib.request.Request(
        f"{arlocal}/graphql",
        data=json.dumps({"query": query, "variables": {"job": tags[1][1]}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        edges = json.loads(resp.read())["data"]["transactions"]["edges"]
    assert [e["node"]["id"] for e in edges] == [first.id]


def test_journalled_tx_signed_but_never_posted_is_posted_on_the_rerun(arlocal: str) -> None:  # noqa: F811
    from imagemint.adapters.arweave.gateway_store import GatewayArchiveStore
    from imagemint.adapters.arweave.store import archive_once
    from imagemint.adapters.arweave.wallet import generate_wallet, wallet_address

    jwk = generate_wallet()
    fund_arweave(arlocal, wallet_address(jwk), 10**14)
    store = GatewayArchiveStore(jwk, arlocal, confirm_timeout_s=5.0, poll_interval_s=0.05)
    data, tags = b'{"killed": "before posting"}', [("Content-Type", "application/json")]
    signed = store.prepare(data, tags)  # the killed run signed and journalled, then died
    journal = Journal(signed.to_json(include_data=False))
    assert http_get(arlocal, f"/tx/{signed.id}/status")[0] == 404
    record = archive_once(store, data, tags, load=journal.load, save=journal.save)
    assert record.id == signed.id
    assert store.read(signed.id) == (data, "application/json")


@pytest.fixture(scope="module")
def zora_on_anvil(anvil: AnvilNode):  # noqa: F811
    from eth_account import Account
    from web3 import Web3

    from imagemint_dev.embedded.zora_deploy import timed_deploy

    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 10}))
    addresses, _ = timed_deploy(w3, Account.from_key(anvil.private_key))
    signer = Account.create()
    w3.provider.make_request("anvil_setBalance", [signer.address, hex(100 * 10**18)])
    return w3, addresses, signer


def anvil_minter(zora_on_anvil: Any, **overrides: Any) -> Any:
    from imagemint.adapters.chain.zora import ZoraMinter

    w3, addresses, signer = zora_on_anvil
    options = {
        "factory_address": addresses.factory,
        "signer": signer,
        "chain_id": 8453,
        "max_fee_gwei": 50,
        "max_priority_fee_gwei": 1,
        "gas_limit_cap": 2_000_000,
        "poll_latency_s": 0.01,
        "receipt_timeout_s": 10,
        "gap_grace_s": 0.2,  # a nonce a killed run left unsent is filled this soon
        **overrides,
    }
    return ZoraMinter(w3, **options)


def test_mint_killed_while_waiting_for_its_receipt_is_settled_on_anvil(zora_on_anvil: Any) -> None:
    from imagemint.errors import MintError

    w3 = zora_on_anvil[0]
    minter = anvil_minter(zora_on_anvil)
    creator = minter.signer.address
    contract = minter.ensure_contract(creator, None, "crash on anvil")
    token = w3.eth.contract(address=contract, abi=_abi())
    before = token.functions.nextTokenId().call()
    journal: list[dict[str, Any]] = []
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        # The run is "killed" while the transaction sits in the pool: it gives up waiting.
        with pytest.raises(MintError) as info:
            anvil_minter(zora_on_anvil, receipt_timeout_s=0.3).mint(
                "ar://killed-waiting", creator, contract, journal=journal.append
            )
        assert info.value.details["reason"] == "timeout"
        pending = journal[-1]
        assert pending["stage"] == "multicall" and pending["tx"]["hash"] == info.value.details["tx_hash"]
        # It even left the pool (a node restart): the re-run sends the same raw transaction again.
        w3.provider.make_request("anvil_dropTransaction", [pending["tx"]["hash"]])
        w3.provider.make_request("evm_setAutomine", [True])
        moment = anvil_minter(zora_on_anvil).resume(pending, journal=journal.append)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert moment is not None and moment.hash == pending["tx"]["hash"]
    assert int(moment.tokenId) == before and token.functions.nextTokenId().call() == before + 1
    # Settling the same record once more finds the receipt and mints nothing.
    assert anvil_minter(zora_on_anvil).resume(pending) == moment
    assert token.functions.nextTokenId().call() == before + 1


class Killed(Exception):
    """The run died here."""


def killed_before_send(minter: Any, uri: str, contract: str) -> dict[str, Any]:
    """A mint whose run dies after journalling its transaction, before sending it: the journal record."""
    journal: list[dict[str, Any]] = []

    def die_after_journal(record: dict[str, Any]) -> None:
        journal.append(record)
        raise Killed

    with pytest.raises(Killed):
        minter.mint(uri, minter.signer.address, contract, journal=die_after_journal)
    return journal[-1]


def test_mint_journal_whose_nonce_was_taken_mints_afresh_once(zora_on_anvil: Any) -> None:
    w3 = zora_on_anvil[0]
    minter = anvil_minter(zora_on_anvil)
    creator = minter.signer.address
    contract = minter.ensure_contract(creator, None, "crash on anvil")
    token = w3.eth.contract(address=contract, abi=_abi())
    pending = killed_before_send(minter, "ar://killed-before-send", contract)
    before = token.functions.nextTokenId().call()
    # Another mint of this signer took the nonce meanwhile: the journalled tx can never be mined.
    minter.mint("ar://someone-else", creator, contract)
    assert anvil_minter(zora_on_anvil).resume(pending) is None
    assert token.functions.nextTokenId().call() == before + 1


def test_a_journalled_mint_the_node_refuses_stays_pending_until_it_is_settled(zora_on_anvil: Any) -> None:
    from eth_account import Account

    from imagemint.errors import MintError

    w3 = zora_on_anvil[0]
    signer = Account.create()
    w3.provider.make_request("anvil_setBalance", [signer.address, hex(10**18)])
    minter = anvil_minter(zora_on_anvil, signer=signer)
    contract = minter.ensure_contract(signer.address, None, "refused on re-send")
    token = w3.eth.contract(address=contract, abi=_abi())
    pending = killed_before_send(minter, "ar://refused-then-settled", contract)
    before = token.functions.nextTokenId().call()
    w3.provider.make_request("anvil_setBalance", [signer.address, "0x0"])
    with pytest.raises(MintError) as info:  # refused (no funds), yet it may still be mined later:
        minter.resume(pending)  # no fresh mint that could make it two
    assert info.value.details["reason"] == "rpc_error"
    assert token.functions.nextTokenId().call() == before
    w3.provider.make_request("anvil_setBalance", [signer.address, hex(10**18)])
    moment = minter.resume(pending)
    assert moment is not None and moment.hash == pending["tx"]["hash"] and moment.tokenId == str(before)
    assert token.functions.nextTokenId().call() == before + 1


def _abi() -> list[dict[str, Any]]:
    from imagemint.adapters.chain.abi import CREATOR_1155_ABI

    return CREATOR_1155_ABI


# ----------------------------------------------------------------------------- resume after the kills


def resume_and_wait(rt: LocalRuntime, job_id: str, timeout: float = 60.0) -> Any:
    from imagemint.wiring import get_deps

    req = urllib.request.Request(
        f"{rt.base_url}/api/jobs/{job_id}/resume",
        method="POST",
        headers={"Authorization": f"Bearer {rt.account['api_key']}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # our own 127.0.0.1 runtime
        assert resp.status == 202
    deadline = time.monotonic() + timeout
    while True:
        job = get_deps().jobs.get(job_id)
        if job.status in ("SUCCEEDED", "PARTIAL", "FAILED") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_a_job_whose_mint_died_every_time_is_resumed_to_one_token(rt: LocalRuntime) -> None:
    """Killed before its handler ran, every time: PARTIAL, and the resume mints once. (Killed after it
    ran, the job is SUCCEEDED with the moment the first attempt recorded: nothing to resume.)"""
    rt.inject_crash(MINT, after=False, times=10, skip=WARM)
    _, job, _ = generate(rt, "resume mint")
    assert job.status == "PARTIAL" and job.resume_from == "mint"
    rt.stack.clear_crashes()
    rt.inject_crash("GenerateStepFunction", after=False, times=1)  # a resume that generated would die here
    done = resume_and_wait(rt, job.job_id)
    assert rt.stack.crash_count("GenerateStepFunction") == 0  # nothing generated again
    assert done.status == "SUCCEEDED" and done.resume_from is None, done
    assert done.result["images"] == job.result["images"] and done.result["archive"] == job.result["archive"]
    metadata = [i for i in archived_items(rt, job.job_id) if "Image-Index" not in i]
    assert len(metadata) == 1
    (token,) = tokens_with_uri(f"ar://{metadata[0]['id']}")
    assert done.result["moment"]["tokenId"] == str(token[1])


def test_a_job_whose_archive_died_every_time_is_resumed_without_a_second_item(rt: LocalRuntime) -> None:
    rt.inject_crash(ARCHIVE, after=True, times=10, skip=WARM)
    _, job, _ = generate(rt, "resume archive")
    assert job.status == "PARTIAL" and job.resume_from == "archive"
    rt.stack.clear_crashes()
    rt.inject_crash("GenerateStepFunction", after=False, times=1)
    done = resume_and_wait(rt, job.job_id)
    assert rt.stack.crash_count("GenerateStepFunction") == 0
    assert done.status == "SUCCEEDED", done
    items = archived_items(rt, job.job_id)
    assert sorted(i.get("Image-Index", "metadata") for i in items) == ["0", "metadata"]  # the same image item
    assert done.result["archive"][0]["id"] == job.archive_0
    (token,) = tokens_with_uri(done.result["metadata_archive"]["uri"])
    assert done.result["moment"]["tokenId"] == str(token[1])
