"""The local runtime as a user meets it: ``imagemint serve`` in a subprocess, real HTTP clients.

Covers all four dialects over HTTP (plain urllib and the official OpenAI SDK),
API Gateway behaviour (404, 413), the job record each generation leaves, and
the CLI's ``generate`` and ``accounts create``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from PIL import Image

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IMAGEMINT = str(Path(sys.executable).with_name("imagemint"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    port = _free_port()
    proc = subprocess.Popen(
        [IMAGEMINT, "serve", "--port", str(port), "--state-dir", str(state), "--no-demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    info_file = state / "dev-account.json"
    deadline = time.monotonic() + 60
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("imagemint serve did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.1)
    time.sleep(0.2)
    info = json.loads(info_file.read_text())
    info["state_dir"] = state
    info["runtime"] = json.loads((state / "runtime.json").read_text())
    yield info
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def call(base, method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:  # follows the 302 to the signed URL
        return r.status, r.headers.get("Content-Type"), r.read()


def job_items(served):
    rt = served["runtime"]
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=rt["aws_endpoint_url"],
        region_name=rt["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return ddb.scan(TableName=rt["env"]["IMAGEMINT_JOBS_TABLE"])["Items"]


def png_size(data):
    img = Image.open(io.BytesIO(data))
    return img.format, img.size


def test_dev_account_file(served):
    assert served["base_url"].startswith("http://127.0.0.1:")
    assert served["api_key"].startswith("im_sk_")
    assert len(served["account_id"]) == 36


def test_unknown_route_is_api_gateway_404(served):
    status, _, body = call(served["base_url"], "GET", "/nope")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    # A routed path with another method: a route is a method and a path, so API Gateway says 404 too.
    status, headers, body = call(served["base_url"], "DELETE", "/api/content/image")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    assert "Allow" not in headers


def test_body_over_api_gateway_limit_is_413(served):
    status, _, body = call(
        served["base_url"], "POST", "/v1/images/generations", raw=b"x" * (10 * 1024 * 1024 + 1)
    )
    assert status == 413


def test_openai_sdk_b64_json_and_url(served):
    from openai import OpenAI

    client = OpenAI(api_key=served["api_key"], base_url=served["base_url"] + "/v1", max_retries=0)
    # as the SDK is used against OpenAI today: no response_format, b64_json comes back
    res = client.images.generate(model="gpt-image-2", prompt="a red bicycle", size="1536x864", n=2)
    assert len(res.data) == 2 and res.model_extra["model"] == "gpt-image-2"
    for item in res.data:
        assert item.url is None and png_size(base64.b64decode(item.b64_json)) == ("PNG", (1536, 864))
    res = client.images.generate(model="gpt-image-2.5-flare", prompt="a green bicycle", quality="xhigh")
    assert res.data[0].b64_json and res.model_extra["model"] == "gpt-image-2.5-flare"
    res = client.images.generate(model="gpt-image-2", prompt="a blue bicycle", response_format="url")
    status, ctype, data = fetch(res.data[0].url)
    assert status == 200 and ctype == "image/png" and png_size(data) == ("PNG", (1024, 1024))


def test_openai_sdk_dall_e_3_runs_on_a_live_model(served):
    from openai import OpenAI

    client = OpenAI(api_key=served["api_key"], base_url=served["base_url"] + "/v1", max_retries=0)
    res = client.images.generate(
        model="dall-e-3",
        prompt="a lighthouse",
        size="1024x1792",
        quality="hd",
        style="natural",
        response_format="b64_json",
    )
    assert png_size(base64.b64decode(res.data[0].b64_json)) == ("PNG", (1024, 1792))
    assert res.model_extra["model"] == "gpt-image-2"
    assert any("dall-e-3" in w and "gpt-image-2" in w for w in res.model_extra["warnings"])


def test_openai_sdk_errors_in_openai_shape(served):
    import openai

    client = openai.OpenAI(api_key=served["api_key"], base_url=served["base_url"] + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model="dall-e-2", prompt="x", size="1792x1024")
    assert exc.value.code == "invalid_size" and exc.value.param == "size"
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model="gpt-image-2", prompt="x", size="1530x860")  # not multiples of 16
    assert exc.value.code == "invalid_size" and exc.value.param == "size"
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model="gpt-image-2", prompt="x", quality="xhigh")  # 2.5 only
    assert exc.value.param == "quality"
    bad = openai.OpenAI(api_key="im_sk_wrong", base_url=served["base_url"] + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.images.generate(model="gpt-image-2", prompt="x")


def test_openai_sdk_edit_with_two_images_and_mask(served):
    from openai import OpenAI

    def png(color):
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), color).save(buf, "PNG")
        buf.seek(0)
        buf.name = f"{color}.png"
        return buf

    mask = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(mask, "PNG")
    mask.seek(0)
    mask.name = "mask.png"
    client = OpenAI(api_key=served["api_key"], base_url=served["base_url"] + "/v1", max_retries=0)
    res = client.images.edit(
        model="gpt-image-2", image=[png("red"), png("green")], mask=mask, prompt="make it a poster"
    )
    data = base64.b64decode(res.data[0].b64_json)
    img = Image.open(io.BytesIO(data)).convert("RGB")
    r, g, b = img.resize((1, 1)).getpixel((0, 0))
    assert r > b  # the red reference shows through the edit


def test_aigne_path_legacy_content_agentai(served):
    base, key = served["base_url"], served["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    status, _, body = call(base, "POST", "/api/images/generations", {"prompt": "a cat", "n": 1}, auth)
    assert status == 200
    out = json.loads(body)
    assert out["model"] == "gpt-image-2" and out["data"][0]["url"]  # dall-e-2 (retired) runs on the default

    status, _, body = call(
        base, "GET", f"/api/image/generate?prompt=tuxedo%20cat&account_id={served['account_id']}"
    )
    assert status == 200
    legacy = json.loads(body)
    img = legacy["images"][0]
    assert img["mediaType"] == "image/png"
    assert bytes(img["uint8Array"]) == base64.b64decode(img["base64"])
    assert legacy["providerMetadata"] == {"model": "gpt-image-2", "size": "1024x1024"}

    status, _, body = call(
        base,
        "POST",
        "/api/content/image",
        {"template": "artist-caption-stage", "num_images": 2, "aspect_ratio": "16:9"},
        {"x-api-key": key},
    )
    assert status == 200
    content = json.loads(body)
    assert content["imageUrl"] == content["images"][0] and len(content["images"]) == 2
    status, ctype, data = fetch(content["imageUrl"])
    assert status == 200 and png_size(data) == ("PNG", (1024, 576))

    status, _, body = call(
        base,
        "POST",
        "/action/generate_image",
        {"prompt": "<b>sunset</b>", "model": "FLUX.1 [schnell]", "model_aspect_ratio": "1:1"},
        auth,
    )
    assert status == 200
    agent = json.loads(body)
    assert "&lt;b&gt;sunset&lt;/b&gt;" in agent["response"] and "<b>" not in agent["response"]
    assert fetch(agent["metadata"]["images"][0]["url"])[0] == 200

    status, _, body = call(base, "GET", "/api/content/templates/album-record-store")
    assert status == 200 and json.loads(body)["id"] == "album-record-store"


def test_every_generation_leaves_a_job_record(served):
    call(
        served["base_url"],
        "POST",
        "/v1/images/generations",
        {"prompt": "job check", "model": "gpt-image-2"},
        {"Authorization": f"Bearer {served['api_key']}"},
    )
    items = job_items(served)
    assert items
    for item in items:
        statuses = [t["M"]["status"]["S"] for t in item["transitions"]["L"]]
        assert statuses[:1] == ["RUNNING"]
        assert statuses[-1] in ("SUCCEEDED", "FAILED")


def test_cli_accounts_create_and_generate(served, tmp_path):
    out = subprocess.run(
        [
            IMAGEMINT,
            "accounts",
            "create",
            "--name",
            "label",
            "--credits",
            "500",  # the agent.ai default: gpt-image-2 at 864x1536, "auto" quoted at high (130)
            "--state-dir",
            str(served["state_dir"]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created = json.loads(out.stdout)
    assert set(created) == {"account_id", "api_key"}
    status, _, _ = call(
        served["base_url"],
        "POST",
        "/action/generate_image",
        {"prompt": "new account"},
        {"Authorization": f"Bearer {created['api_key']}"},
    )
    assert status == 200

    env = {**os.environ}
    res = subprocess.run(
        [
            IMAGEMINT,
            "generate",
            "a lighthouse in a storm",
            "--out",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    files = [Path(p) for p in res.stdout.split()]
    assert files and png_size(files[0].read_bytes())[0] == "PNG"
    assert "[3/3]" in res.stderr


def test_serve_survives_a_failed_demo_and_says_what_to_set(tmp_path):
    """With a key OpenAI refuses, the demo fails: one clear line, and the server keeps serving."""
    import threading

    from stubs.openai_stub import OpenAIStub

    with OpenAIStub() as stub:
        stub.inject("unauthorized", times=None)
        port = _free_port()
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-refused",
            "IMAGEMINT_OPENAI_BASE_URL": stub.base_url + "/v1",
        }
        proc = subprocess.Popen(
            [IMAGEMINT, "serve", "--port", str(port), "--state-dir", str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not any("Still serving" in line for line in lines):
                assert proc.poll() is None, "imagemint serve exited:\n" + "".join(lines)
                assert time.monotonic() < deadline, "no demo outcome:\n" + "".join(lines)
                time.sleep(0.2)
            (failed,) = [line for line in lines if line.startswith("demo: failed")]
            assert "HTTP 502" in failed and "refused the API key" in failed and "OPENAI_API_KEY" in failed
            assert "sk-refused" not in "".join(lines)
            assert stub.sent() and {p["model"] for p in stub.sent()} == {"gpt-image-2"}  # the live default
            status, _, body = call(f"http://127.0.0.1:{port}", "GET", "/api/content/templates")
            assert status == 200 and json.loads(body)["status"] == "success"
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
