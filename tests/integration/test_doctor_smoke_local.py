"""``imagemint doctor`` and ``imagemint smoke`` against the local runtime, and fail-closed provenance.

The runtime runs ``chain_mode=rpc`` with no signer key parameter (as a deploy that skipped that step):
doctor names the parameter, the mint step fails with ``MintError`` reason ``config`` naming it and the
job stays PARTIAL and resumable. The RPC URL is a closed loopback port: it is never reached, because the
key is read first.
"""

from __future__ import annotations

import io
import json
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from imagemint_dev import cli, smoke
from imagemint_dev.local.runtime import start
from imagemint_dev.local.template import Template

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SIGNER_PARAM = "/imagemint/signer-key"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    env = {"IMAGEMINT_CHAIN_MODE": "rpc", "IMAGEMINT_CHAIN_RPC_URL": "http://127.0.0.1:9"}
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("doctor"), port=0, extra_env=env)
    yield rt
    rt.stop()


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def doctor(rt) -> tuple[int, dict]:
    code, out = run_cli("doctor", "--state-dir", str(rt.stack.state_dir), "--json")
    return code, json.loads(out)


def test_doctor_reports_the_modes_and_the_missing_signer_key(runtime):
    code, report = doctor(runtime)
    assert code == 1 and not report["ok"]
    assert report["modes"]["chain_mode"] == "rpc" and report["modes"]["archive_mode"] == "embedded"
    params = {p["parameter"]: p for p in report["parameters"]}
    assert params[SIGNER_PARAM]["status"] == "missing" and params[SIGNER_PARAM]["needed"]
    assert params["/imagemint/key-hash-secret"]["status"] == "ok"
    # provider_mode auto (local): a missing provider key is reported, and optional (offline provider).
    assert params["/imagemint/openai-api-key"]["needed"] is False
    legacy = next(e["does"] for e in report["endpoints"] if e["endpoint"] == "GET /api/image/generate")
    assert f"mint: fails (mint_failed, reason config, naming {SIGNER_PARAM})" in legacy

    code, text = run_cli("doctor", "--state-dir", str(runtime.stack.state_dir))
    assert code == 1 and f"NOT READY: {SIGNER_PARAM} missing" in text


def test_doctor_names_a_parameter_removed_from_the_runtime(runtime):
    ssm = runtime.stack.client("ssm")
    name = runtime.stack.env["IMAGEMINT_KEY_HASH_SECRET_PARAM"]
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=SIGNER_PARAM, Value="0x" + "11" * 32, Type="SecureString", Overwrite=True)
    ssm.delete_parameter(Name=name)
    try:
        code, report = doctor(runtime)
    finally:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        ssm.delete_parameter(Name=SIGNER_PARAM)
    bad = {p["parameter"]: p["status"] for p in report["parameters"] if p["needed"] and p["status"] != "ok"}
    assert code == 1 and bad == {name: "missing"}
    code, report = doctor(runtime)
    assert {
        p["parameter"]: p["status"] for p in report["parameters"] if p["needed"] and p["status"] != "ok"
    } == {SIGNER_PARAM: "missing"}


def test_mint_with_an_unreadable_signer_key_is_a_config_error_and_the_job_stays_resumable(runtime):
    req = urllib.request.Request(
        f"{runtime.base_url}/v1/images/generations",
        data=json.dumps({"prompt": "koi", "archive": True, "mint": True, "response_format": "url"}).encode(),
        headers={"Authorization": f"Bearer {runtime.account['api_key']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - our own 127.0.0.1 runtime
        assert r.status == 200
        body = json.loads(r.read())
    assert any("Minting the moment" in w for w in body.get("warnings", [])), body

    ddb = runtime.stack.client("dynamodb")
    items = ddb.scan(TableName=runtime.stack.env["IMAGEMINT_JOBS_TABLE"])["Items"]
    (job,) = [i for i in items if i["status"]["S"] == "PARTIAL"]
    assert job["resume_from"]["S"] == "mint"
    error = job["provenance_error"]["M"]
    assert error["code"]["S"] == "mint_failed" and error["param"]["S"] == SIGNER_PARAM
    assert error["details"]["M"]["reason"]["S"] == "config"
    assert job["result"]["M"]["archive"]["L"]  # what was made is kept for the resume


def test_smoke_calls_every_endpoint_once_and_prints_a_table(runtime):
    routes = {(r.method, r.path) for r in Template.load(ROOT / "template.yaml").routes()}
    assert routes <= smoke.ROUTES, f"smoke does not call {sorted(routes - smoke.ROUTES)}"

    args = ["--base-url", runtime.base_url, "--api-key", runtime.account["api_key"]]
    args += ["--account-id", runtime.account["account_id"]]
    code, text = run_cli("smoke", *args, "--json")
    rows = json.loads(text)
    called = {tuple(r["endpoint"].split(" (")[0].split(" ", 1)) for r in rows}
    assert smoke.ROUTES <= called
    # The legacy endpoint archives and mints: here minting has no key, so it answers 200 with the image.
    assert [r for r in rows if not r["ok"]] == [] and code == 0

    table = smoke.render([smoke.Row(**r) for r in rows])
    lines = table.splitlines()
    assert lines[0].split() == ["endpoint", "status", "ms", "ok"]
    assert lines[-1] == f"{len(rows)}/{len(rows)} as expected"
