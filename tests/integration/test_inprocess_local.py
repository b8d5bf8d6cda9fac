"""chain_mode=inprocess through the local runtime by configuration alone (issue 15).

One runtime for the module, its mint step pointed at the In Process protocol stub
(``tests/stubs/inprocess_stub.py``) with ``IMAGEMINT_CHAIN_MODE=inprocess``: the legacy endpoint's
``moment`` is In Process's answer, an account's later moments reuse its collection, ``mint: true`` on
the other dialects creates moments too, a 5xx leaves the job PARTIAL and a resume completes it, and a
mint step killed after its create was sent (answer lost) creates nothing twice.

No RPC URL is configured, so nothing is read back on chain: the job says so (``mint_via``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stubs.inprocess_stub import InProcessStub

from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MINT = "MintStepFunction"
DEFAULT_ACCOUNT = "0x" + "5e" * 20


@pytest.fixture(scope="module")
def stub() -> Iterator[InProcessStub]:
    with InProcessStub() as s:
        yield s


@pytest.fixture(scope="module")
def runtime(stub: InProcessStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    env = {
        "IMAGEMINT_CHAIN_MODE": "inprocess",
        "IMAGEMINT_INPROCESS_BASE_URL": stub.base_url,
        "IMAGEMINT_INPROCESS_DEFAULT_ACCOUNT": DEFAULT_ACCOUNT,
        "IMAGEMINT_CHAIN_RPC_URL": "",
        # A short budget so an answer lost after creating is a timeout well inside the Mint task;
        # no grace: a create whose moment is not listed is sent again on the next run.
        "IMAGEMINT_INPROCESS_TIMEOUT_S": "3",
        "IMAGEMINT_INPROCESS_LOOKUP_GRACE_S": "0",
    }
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("inprocess"), port=0, extra_env=env)
    yield rt
    rt.stop()


@pytest.fixture
def rt(runtime: LocalRuntime, stub: InProcessStub) -> Iterator[LocalRuntime]:
    stub.clear_faults()
    runtime.stack.clear_crashes()
    yield runtime
    stub.clear_faults()
    runtime.stack.clear_crashes()


def legacy(rt: LocalRuntime, prompt: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"prompt": prompt, "account_id": rt.account["account_id"]})
    with urllib.request.urlopen(f"{rt.base_url}/api/image/generate?{query}", timeout=120) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def post(rt: LocalRuntime, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(
        rt.base_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {rt.account['api_key']}",
            **(headers or {}),
        },
    )
    with urllib.request.urlopen(req, timeout=120) as r:  # our own 127.0.0.1 runtime
        return json.loads(r.read())


def job(job_id: str) -> Any:
    from imagemint.wiring import get_deps

    return get_deps().jobs.get(job_id)


def wait(job_id: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        j = job(job_id)
        if j.status in ("SUCCEEDED", "PARTIAL", "FAILED") or time.monotonic() > deadline:
            return j
        time.sleep(0.1)


def metadata_uri(j: Any) -> str:
    return (
        str(j.result["metadata_archive"]["uri"])
        if j.result.get("metadata_archive")
        else str(j.mint_tx["uri"])
    )


def stub_answer(stub: InProcessStub, uri: str) -> dict[str, Any]:
    (made,) = stub.moments_of(uri)
    return {
        "contractAddress": made.address,
        "tokenId": str(made.token_id),
        "hash": made.hash,
        "chainId": 8453,
    }


def test_legacy_moments_come_from_in_process_and_reuse_the_accounts_collection(
    rt: LocalRuntime, stub: InProcessStub
) -> None:
    first = legacy(rt, "in process one")
    second = legacy(rt, "in process two")
    j1, j2 = job(first["jobId"]), job(second["jobId"])
    assert j1.status == j2.status == "SUCCEEDED", (j1.provenance_error, j2.provenance_error)
    assert first["moment"] == stub_answer(stub, metadata_uri(j1)) == j1.moment
    assert second["moment"] == stub_answer(stub, metadata_uri(j2)) == j2.moment
    assert second["moment"]["contractAddress"] == first["moment"]["contractAddress"]
    assert int(second["moment"]["tokenId"]) == int(first["moment"]["tokenId"]) + 1
    creates = [r.json for r in stub.on("create") if r.json["token"]["tokenMetadataURI"] == metadata_uri(j2)]
    assert creates[0]["contract"] == {"address": first["moment"]["contractAddress"]}
    assert creates[0]["account"] == DEFAULT_ACCOUNT  # the dev account has no wallet
    assert len(stub.collections) == 1
    # Simulated before created, every time.
    routes = [r.route for r in stub.requests if r.route in ("simulate", "create")]
    assert routes[:4] == ["simulate", "create", "simulate", "create"]
    assert j1.mint_via["checked"] is False and "No RPC URL" in j1.mint_via["note"]
    # The verify verdict says plainly that the token was not read back (no RPC URL), not a 500.
    with urllib.request.urlopen(f"{rt.base_url}/api/verify/{first['jobId']}", timeout=60) as r:
        verdict = json.loads(r.read())
    token = verdict["links"]["token"]
    assert token["ok"] is False and "No RPC URL" in token["error"]
    assert token["contract"] == first["moment"]["contractAddress"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/content/image", {"prompt": "content moment"}),
        ("/v1/images/generations", {"prompt": "openai moment", "model": "gpt-image-2"}),
        ("/action/generate_image", {"prompt": "agent moment"}),
    ],
    ids=["content", "openai", "agentai"],
)
def test_mint_true_on_other_dialects_creates_a_moment(
    rt: LocalRuntime, stub: InProcessStub, path: str, body: dict[str, Any]
) -> None:
    accepted = post(rt, path, {**body, "archive": True, "mint": True}, {"Prefer": "respond-async"})
    done = wait(accepted["job_id"])
    assert done.status == "SUCCEEDED", done.provenance_error
    assert done.moment == stub_answer(stub, metadata_uri(done))
    assert len(stub.collections) == 1  # the account's one collection


def test_a_5xx_leaves_the_job_partial_and_resume_creates_it_once(
    rt: LocalRuntime, stub: InProcessStub
) -> None:
    stub.inject("server_error", on="create", times=None)  # every create 5xx (nothing created)
    res = legacy(rt, "in process 5xx")
    failed = job(res["jobId"])
    assert failed.status == "PARTIAL" and failed.resume_from == "mint", failed.status
    assert res["moment"] is None and failed.provenance_error["details"]["reason"] == "upstream_error"
    assert failed.mint_tx["stage"] == "sent"  # the answer was unknown: the re-run looked it up first
    uri = failed.mint_tx["uri"]
    stub.clear_faults()
    req = urllib.request.Request(
        f"{rt.base_url}/api/jobs/{failed.job_id}/resume",
        method="POST",
        headers={"Authorization": f"Bearer {rt.account['api_key']}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:  # our own 127.0.0.1 runtime
        assert r.status == 202
    done = wait(failed.job_id)
    assert done.status == "SUCCEEDED" and done.moment == stub_answer(stub, uri)
    assert stub.creates_per_uri()[uri] == 1
    lookups = [r for r in stub.on("timeline") if r.query.get("collection") or r.query.get("artist")]
    assert lookups  # a run whose journal said "sent" looked the moment up before creating


def test_a_mint_step_killed_after_its_answer_was_lost_creates_nothing_twice(
    rt: LocalRuntime, stub: InProcessStub
) -> None:
    # The create is done on In Process's side, its answer never arrives in time, and the runtime dies.
    stub.inject("lost_after_create", on="create", seconds=6)
    rt.inject_crash(MINT, after=True, skip=1)  # skip the warm-up invocation (GenerateAndWarm)
    res = legacy(rt, "in process killed")
    done = job(res["jobId"])
    assert rt.stack.crash_count(MINT) == 1
    assert done.status == "SUCCEEDED", done.provenance_error
    uri = metadata_uri(done)
    assert stub.creates_per_uri()[uri] == 1
    made = stub_answer(stub, uri)
    assert res["moment"] == done.moment == {**made, "hash": ""}  # found on the timeline: no hash
    assert done.mint_via["answer_lost"] is True
    assert all(n == 1 for n in stub.creates_per_uri().values())  # no job of this module created twice
