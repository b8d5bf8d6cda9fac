"""Real providers by configuration alone: the local runtime pointed at the OpenAI protocol stub.

Each dialect request goes API function -> state machine -> generate step -> OpenAI SDK -> stub; the
test asserts what the stub received and what the client got back, faults included.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stub():
    from stubs.openai_stub import OpenAIStub

    s = OpenAIStub()
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def runtime(stub, tmp_path_factory):
    env = {"IMAGEMINT_OPENAI_API_KEY": "sk-stub", "IMAGEMINT_OPENAI_BASE_URL": stub.base_url + "/v1"}
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("prov"), port=0, extra_env=env)
    yield rt
    rt.stop()


def post(rt, path, body, headers=None):
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
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_dall_e_3_request_runs_on_gpt_image_1_with_mapped_parameters(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(
        runtime,
        "/v1/images/generations",
        {
            "model": "dall-e-3",
            "prompt": "a fox",
            "quality": "hd",
            "size": "1792x1024",
            "response_format": "b64_json",
        },
    )
    assert status == 200, body
    sent = stub.requests[before:][0].json
    assert sent["model"] == "gpt-image-1" and sent["quality"] == "high" and sent["size"] == "1536x1024"
    assert "response_format" not in sent and "style" not in sent
    assert body["model"] == "gpt-image-1"
    assert any("retired" in w for w in body["warnings"])
    assert not any("offline" in w for w in body["warnings"])


def test_agentai_dall_e_3_ratio_reaches_the_provider(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(
        runtime, "/action/generate_image", {"prompt": "a fox", "model_aspect_ratio": "9:16"}
    )
    assert status == 200, body
    assert stub.requests[before:][0].json["size"] == "1024x1536"


def test_moderation_block_is_an_explicit_error(runtime, stub):
    stub.inject("moderation")
    status, _, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-1", "prompt": "x"})
    assert status == 400 and body["error"]["code"] == "moderation_blocked"


def test_rate_limit_reaches_the_client_with_retry_after(runtime, stub):
    stub.inject("rate_limit", times=3, retry_after=9)  # the state machine retries twice first
    status, headers, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-1", "prompt": "x"})
    assert status == 429 and body["error"]["type"] == "rate_limit_exceeded"
    assert headers.get("Retry-After") == "9"


def test_org_verification_is_a_clear_502(runtime, stub):
    stub.inject("org_verification")
    status, _, body = post(runtime, "/api/content/image", {"model": "fal-ai/flux/schnell"}, {})
    assert status == 200  # fal has no key here: that dialect runs offline, untouched by the fault
    status, _, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-1", "prompt": "x"})
    assert status == 502 and "verif" in body["error"]["message"].lower()
