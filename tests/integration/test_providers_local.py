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


def get(rt, path, headers=None):
    req = urllib.request.Request(rt.base_url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def sent_since(stub, before):
    return [stub.params(r) for r in stub.requests[before:] if r.route in ("generations", "edits")]


def test_dall_e_3_request_runs_on_the_live_default_with_mapped_parameters(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(
        runtime,
        "/v1/images/generations",
        {
            "model": "dall-e-3",
            "prompt": "a fox",
            "quality": "hd",
            "style": "natural",
            "size": "1792x1024",
            "response_format": "b64_json",
        },
    )
    assert status == 200, body
    (sent,) = sent_since(stub, before)
    assert sent["model"] == "gpt-image-2" and sent["quality"] == "high" and sent["size"] == "1792x1024"
    assert "response_format" not in sent and "style" not in sent
    assert body["model"] == "gpt-image-2" and body["size"] == "1792x1024"
    assert any("dall-e-3" in w and "gpt-image-2" in w for w in body["warnings"])
    assert not any("offline" in w for w in body["warnings"])


def test_gpt_image_2_at_an_arbitrary_size(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(
        runtime, "/v1/images/generations", {"model": "gpt-image-2", "prompt": "a fox", "size": "1536x864"}
    )
    assert status == 200, body
    (sent,) = sent_since(stub, before)
    assert (sent["model"], sent["size"]) == ("gpt-image-2", "1536x864")
    assert body["size"] == "1536x864" and "b64_json" in body["data"][0]  # OpenAI's default answer on /v1
    # the cost is the token cost the stub reported: 1056 image output tokens at $30 per 1M, plus the prompt
    assert 1056 * 30 / 1e6 < body["usage"]["cost_usd"] < 1056 * 30 / 1e6 + 0.001


def test_gpt_image_2_5_flare_at_xhigh(runtime, stub):
    before = len(stub.requests)
    body_in = {"model": "gpt-image-2.5-flare", "prompt": "a fox", "quality": "xhigh"}
    status, _, body = post(runtime, "/v1/images/generations", body_in)
    assert status == 200, body
    (sent,) = sent_since(stub, before)
    assert (sent["model"], sent["quality"]) == ("gpt-image-2.5-flare", "xhigh")
    assert body["model"] == "gpt-image-2.5-flare" and body["warnings"] == []


def test_gpt_image_1_runs_on_its_replacement(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-1", "prompt": "a fox"})
    assert status == 200, body
    (sent,) = sent_since(stub, before)
    assert sent["model"] == "gpt-image-2.5-flare" == body["model"]
    assert any("gpt-image-1" in w and "gpt-image-2.5-flare" in w for w in body["warnings"])


def test_a_size_gpt_image_2_refuses_is_a_400_before_anything_is_sent(runtime, stub):
    before = len(stub.requests)
    status, _, body = post(
        runtime, "/v1/images/generations", {"model": "gpt-image-2", "prompt": "a fox", "size": "1530x860"}
    )
    assert status == 400 and body["error"]["param"] == "size" and body["error"]["code"] == "invalid_size"
    assert sent_since(stub, before) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "model", "size"),
    [
        ("POST", "/v1/images/generations", {"prompt": "a fox"}, "gpt-image-2", "1024x1024"),  # dall-e-2
        ("POST", "/api/images/generations", {"prompt": "a fox"}, "gpt-image-2", "1024x1024"),
        ("POST", "/action/generate_image", {"prompt": "a fox"}, "gpt-image-2", "864x1536"),  # DALL-E 3, 9:16
        ("GET", "/api/image/generate?prompt=a+fox&account_id={account}", None, "gpt-image-2", "1024x1024"),
    ],
    ids=["aigne-v1", "aigne-api", "agentai", "legacy"],
)
def test_every_dialects_default_request_runs_on_a_live_model(runtime, stub, method, path, body, model, size):
    before = len(stub.requests)
    if method == "GET":
        status, out = get(runtime, path.format(account=runtime.account["account_id"]))
    else:
        status, _, out = post(runtime, path, body)
    assert status == 200, out
    sent = sent_since(stub, before)
    assert sent and all((p["model"], p["size"]) == (model, size) for p in sent)


def test_v1_models_lists_the_live_models(runtime):
    status, body = get(runtime, "/v1/models", {"Authorization": f"Bearer {runtime.account['api_key']}"})
    assert status == 200 and body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["gpt-image-2"]["status"] == "active" and by_id["gpt-image-1"]["status"] == "shutdown"
    status, one = get(
        runtime, "/v1/models/gpt-image-2.5-flare", {"Authorization": f"Bearer {runtime.account['api_key']}"}
    )
    assert status == 200 and one["id"] == "gpt-image-2.5-flare"


def test_moderation_block_is_an_explicit_error(runtime, stub):
    stub.inject("moderation")
    status, _, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-2", "prompt": "x"})
    assert status == 400 and body["error"]["code"] == "moderation_blocked"


def test_rate_limit_reaches_the_client_with_retry_after(runtime, stub):
    stub.inject("rate_limit", times=1, retry_after=9)  # no layer below retries RateLimited
    status, headers, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-2", "prompt": "x"})
    assert status == 429 and body["error"]["type"] == "rate_limit_exceeded"
    assert headers.get("Retry-After") == "9"


def test_org_verification_is_a_clear_502(runtime, stub):
    stub.inject("org_verification")
    status, _, body = post(runtime, "/api/content/image", {"model": "fal-ai/flux/schnell"}, {})
    assert status == 200  # fal has no key here: that dialect runs offline, untouched by the fault
    status, _, body = post(runtime, "/v1/images/generations", {"model": "gpt-image-2", "prompt": "x"})
    assert status == 502 and "verif" in body["error"]["message"].lower()


def test_the_stub_log_shows_nothing_openai_refuses_was_ever_sent(runtime, stub):
    """Last in this module: over every request above, no shut-down model, response_format or style."""
    from stubs.openai_stub import SHUT_DOWN

    sent = stub.sent()
    assert len(sent) >= 8
    assert not [
        p for p in sent if p.get("model") in SHUT_DOWN or stub.status_of(str(p.get("model"))) != "live"
    ]
    assert not [p for p in sent if "response_format" in p or "style" in p]
