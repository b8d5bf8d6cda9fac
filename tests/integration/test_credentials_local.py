"""Content Credentials and the verify walk on the embedded default, through the local runtime.

Every image a dialect returns carries our C2PA manifest (trusted with the runtime's
root from its state dir); ``GET /api/verify/{ref}`` is green for a real job from
each kind of ref, and each tamper case turns exactly its own link red.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from imagemint.adapters.c2pa.signer import C2paCredentialReader
from imagemint.domain.ports import TRAINED_ALGORITHMIC_MEDIA
from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LINKS = ("image", "arweave", "metadata", "token")


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # our own 127.0.0.1 runtime
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    state = tmp_path_factory.mktemp("c2pa")
    rt = start(root=ROOT, state_dir=state, port=0)
    rt.state = state
    yield rt
    rt.stop()


def legacy(runtime, prompt: str) -> dict:
    acct = runtime.account["account_id"]
    q = urllib.parse.quote(prompt)
    status, body = get_json(f"{runtime.base_url}/api/image/generate?prompt={q}&account_id={acct}")
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def minted(runtime):
    body = legacy(runtime, "a lighthouse at dusk")
    tags = {t["name"]: t["value"] for t in body["arweaveResult"]["tags"]}
    m = body["moment"]
    return {
        "body": body,
        "job_id": tags["Job-Id"],
        "arweave_id": body["arweaveResult"]["id"],
        "token_ref": f"{m['chainId']}:{m['contractAddress']}:{m['tokenId']}",
    }


def red(verdict: dict) -> set[str]:
    return {name for name in LINKS if verdict["links"][name] is not None and not verdict["links"][name]["ok"]}


def test_the_delivered_image_is_signed_and_trusted_with_the_runtimes_root(runtime, minted):
    data = base64.b64decode(minted["body"]["images"][0]["base64"])
    root = (runtime.state / "c2pa-root.pem").read_bytes()
    report = C2paCredentialReader(root).read(data, "image/png")
    assert report.trusted, report.failures
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA and report.job_id == minted["job_id"]
    assert report.claim_generator == "imagemint 0.1.0" and report.software_agent.endswith("/gpt-image-2")
    assert C2paCredentialReader(None).read(data, "image/png").state == "Valid"  # untrusted without our root


@pytest.mark.parametrize("kind", ["job_id", "arweave_id", "token_ref"])
def test_verify_is_green_from_each_kind_of_ref(runtime, minted, kind):
    status, verdict = get_json(f"{runtime.base_url}/api/verify/{minted[kind]}")
    assert status == 200, verdict
    assert verdict["job_id"] == minted["job_id"] and verdict["ok"] is True, verdict
    assert red(verdict) == set() and all(verdict["links"][n] for n in LINKS)
    token = verdict["links"]["token"]
    assert token["uri"] == verdict["links"]["metadata"]["uri"] and token["owner"].startswith("0x")


def test_unknown_refs(runtime):
    assert get_json(f"{runtime.base_url}/api/verify/not-a-ref")[0] == 400
    assert get_json(f"{runtime.base_url}/api/verify/{'0' * 8}-0000-4000-8000-{'0' * 12}")[0] == 404


def test_each_tamper_case_turns_exactly_its_link_red(runtime, minted):
    from imagemint.wiring import get_deps

    deps = get_deps()
    job = deps.jobs.get(minted["job_id"])
    image_key = job.result["images"][0]["key"]
    url = f"{runtime.base_url}/api/verify/{minted['job_id']}"

    # 1. A flipped byte in the image we deliver.
    original = deps.images.get(image_key)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    deps.images.put(image_key, bytes(flipped), "image/png")
    try:
        assert red(get_json(url)[1]) == {"image"}
    finally:
        deps.images.put(image_key, original, "image/png")

    # 2. The Arweave item swapped: the gateway serves other bytes under the id.
    other = legacy(runtime, "another image entirely")
    other_bytes = base64.b64decode(other["images"][0]["base64"])
    item_key = f"arweave/{minted['arweave_id']}"
    kept = deps.images.get(item_key)
    deps.images.put(item_key, other_bytes, "image/png")
    try:
        assert red(get_json(url)[1]) == {"arweave"}
    finally:
        deps.images.put(item_key, kept, "image/png")

    # 3. A wrong token: the job's moment points at another job's token.
    result = dict(job.result)
    result["moment"] = {**job.result["moment"], "tokenId": other["moment"]["tokenId"]}
    deps.jobs.update(minted["job_id"], result=result)
    try:
        assert red(get_json(url)[1]) == {"token"}
    finally:
        deps.jobs.update(minted["job_id"], result=job.result)
    assert get_json(url)[1]["ok"] is True


def test_the_cli_prints_the_same_verdict_for_a_file_and_a_ref(runtime, minted, tmp_path, capsys):
    from imagemint_dev.cli import main

    image = tmp_path / "moment.png"
    image.write_bytes(base64.b64decode(minted["body"]["images"][0]["base64"]))
    common = ["--base-url", runtime.base_url, "--state-dir", str(runtime.state)]
    assert main(["verify", str(image), *common]) == 0
    out = capsys.readouterr().out
    assert "C2PA Trusted" in out and "trainedAlgorithmicMedia" in out and "chain     holds" in out
    assert main(["verify", minted["token_ref"], "--json", *common]) == 0
    verdict = json.loads(capsys.readouterr().out)["verdict"]
    assert verdict["job_id"] == minted["job_id"] and verdict["ok"] is True
