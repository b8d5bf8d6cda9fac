"""Provenance on the embedded default, through the local runtime: signed Arweave items, a gateway,
and moments on the in-process EVM with the Zora 1155 contracts; partial failures keep the image."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:  # our own 127.0.0.1 runtime
        return r.status, r.headers.get("Content-Type"), r.read()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("prov"), port=0)
    yield rt
    rt.stop()


def test_legacy_archives_and_mints(runtime):
    acct = runtime.account["account_id"]
    status, _, body = get(
        f"{runtime.base_url}/api/image/generate?prompt=tuxedo%20cat%20trumpet&account_id={acct}"
    )
    assert status == 200
    res = json.loads(body)
    ar = res["arweaveResult"]
    # The id is base64url(sha256(signature)), and the gateway serves the same bytes.
    assert ar["id"] == b64url(hashlib.sha256(base64.urlsafe_b64decode(ar["signature"] + "==")).digest())
    assert ar["format"] == 2 and ar["quantity"] == "0" and ar["target"] == ""
    names = {t["name"]: t["value"] for t in ar["tags"]}
    assert names["Content-Type"] == "image/png" and names["App-Name"] == "imagemint" and "Job-Id" in names
    assert res["imageUrl"] == f"{runtime.base_url}/{ar['id']}"
    status, ctype, data = get(res["imageUrl"])
    assert ctype == "image/png" and data == base64.b64decode(res["images"][0]["base64"])

    moment = res["moment"]
    assert moment["chainId"] == 8453 and moment["tokenId"] and moment["hash"].startswith("0x")

    # The token's on-chain URI is the archived metadata, which points at the image.
    from imagemint.adapters.chain.abi import CREATOR_1155_ABI
    from imagemint_dev.embedded.chain import default_local_chain

    w3, _, _ = default_local_chain().start()
    token = w3.eth.contract(address=moment["contractAddress"], abi=CREATOR_1155_ABI)
    uri = token.functions.uri(int(moment["tokenId"])).call()
    assert uri.startswith("ar://")
    status, ctype, meta_raw = get(f"{runtime.base_url}/{uri.removeprefix('ar://')}")
    meta = json.loads(meta_raw)
    assert ctype == "application/json"
    assert meta["image"] == f"ar://{ar['id']}" and meta["content"] == {
        "mime": "image/png",
        "uri": meta["image"],
    }
    assert meta["name"] == "tuxedo cat trumpet" and meta["description"] == "tuxedo cat trumpet"
    traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert traits["model"] == "gpt-image-2" and traits["size"] == "1024x1024" and traits["job_id"]


def test_openai_dialect_opts_in_to_archive(runtime):
    req = urllib.request.Request(
        f"{runtime.base_url}/v1/images/generations",
        data=json.dumps({"prompt": "opt in", "model": "gpt-image-2", "archive": True, "n": 2}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {runtime.account['api_key']}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    assert len(body["data"]) == 2


def test_job_record_for_its_owner_only(runtime):
    acct = runtime.account["account_id"]
    _, _, body = get(f"{runtime.base_url}/api/image/generate?prompt=job%20view&account_id={acct}")
    ddb = runtime.stack.client("dynamodb")
    items = ddb.scan(TableName=runtime.stack.env["IMAGEMINT_JOBS_TABLE"])["Items"]
    job_id = items[0]["job_id"]["S"]
    req = urllib.request.Request(
        f"{runtime.base_url}/api/jobs/{job_id}", headers={"x-api-key": runtime.account["api_key"]}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        job = json.loads(r.read())
    assert job["job_id"] == job_id and job["status"] in ("SUCCEEDED", "PARTIAL")
    assert [t["status"] for t in job["transitions"]][0] == "RUNNING"
    assert job["result"]["image_urls"]
    from imagemint.domain import auth
    from imagemint.wiring import get_deps

    _, other_key = auth.create_account(get_deps().accounts, get_deps().settings, name="other")
    req = urllib.request.Request(f"{runtime.base_url}/api/jobs/{job_id}", headers={"x-api-key": other_key})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 404  # another account's job does not exist for it
    for headers in ({}, {"x-api-key": "im_sk_nope"}):
        req = urllib.request.Request(f"{runtime.base_url}/api/jobs/{job_id}", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=30)
        assert exc.value.code == 401
