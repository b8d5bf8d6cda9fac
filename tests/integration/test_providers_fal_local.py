"""fal by configuration alone: the local runtime pointed at the fal queue stub.

Two variables make the running service use fal: ``IMAGEMINT_FAL_KEY`` and
``IMAGEMINT_FAL_QUEUE_URL`` (the stub's plain-http loopback URL, which is also
what lets the result images be downloaded over http, from loopback only).
Each request goes API function -> state machine -> generate step ->
FalProvider (its own queue client) -> stub. The tests assert the arguments the stub
received, that the images a client gets are durable URLs of ours holding
exactly the bytes the stub served, and that faults come back in each dialect's
error shape.

Reference images are sent as ``data:`` URIs: the server-side fetch refuses
loopback URLs (a test below shows it still does in this configuration).

Its own module: one local runtime per process at a time (moto's state is
process-wide).
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stubs import make_image
from stubs.fal_stub import FalStub, QueuedRequest

from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FAL_KEY = "stub-key-id:stub-key-secret"
PROVIDER_TIMEOUT_S = 2
REF_PNG, _ = make_image(24, 16, "png", 3)
REF_URI = "data:image/png;base64," + base64.b64encode(REF_PNG).decode("ascii")


@pytest.fixture(scope="module")
def stub() -> Iterator[FalStub]:
    with FalStub() as s:
        yield s


@pytest.fixture(scope="module")
def runtime(stub: FalStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    env = {
        "IMAGEMINT_FAL_KEY": FAL_KEY,
        "IMAGEMINT_FAL_QUEUE_URL": stub.base_url,
        "IMAGEMINT_PROVIDER_TIMEOUT_S": str(PROVIDER_TIMEOUT_S),
    }
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("fal"), port=0, extra_env=env)
    yield rt
    rt.stop()


@pytest.fixture(autouse=True)
def clean_stub(stub: FalStub) -> Iterator[None]:
    yield
    stub.clear_faults()
    stub.hold = False


def post(rt: LocalRuntime, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        rt.base_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {rt.account['api_key']}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # our own 127.0.0.1 runtime
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:  # follows the 302 to the signed (moto) URL
        assert r.status == 200
        return bytes(r.read())


def new_requests(stub: FalStub, before: int) -> list[QueuedRequest]:
    return list(stub.queue.values())[before:]


def served(stub: FalStub, queued: QueuedRequest) -> list[bytes]:
    """The image bytes the stub served for one queue request, in the result's order."""
    assert queued.result is not None, "the result was never fetched"
    return [stub.files[image["file_name"]][0] for image in queued.result["images"]]


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.mode, img.size, img.tobytes()


def assert_durable(rt: LocalRuntime, urls: list[str], expected: list[bytes]) -> None:
    """The durable URLs serve the provider's images: the same pixels, never re-encoded, plus the
    Content Credentials the Sign step embedded (so the bytes themselves differ)."""
    assert all(u.startswith(rt.base_url + "/api/files/") for u in urls), urls
    got = [download(u) for u in urls]
    assert [pixels(g) for g in got] == [pixels(e) for e in expected]
    assert all(b"c2pa" in g and g != e for g, e in zip(got, expected, strict=True))


# --------------------------------------------------------------------------- content dialect


def test_content_default_model_is_nano_banana_2_with_mapped_parameters(
    runtime: LocalRuntime, stub: FalStub
) -> None:
    before = len(stub.queue)
    status, _, body = post(
        runtime,
        "/api/content/image",
        {"prompt": "a neon koi pond", "num_images": 2, "aspect_ratio": "16:9", "resolution": "2K"},
    )
    assert status == 200, body
    [queued] = new_requests(stub, before)
    assert queued.app == "fal-ai/nano-banana-2"
    assert queued.arguments == {
        "prompt": "a neon koi pond",
        "num_images": 2,
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "output_format": "png",
    }
    submit = stub.submissions[-1]
    assert submit.headers["authorization"] == f"Key {FAL_KEY}"
    assert submit.headers["x-fal-request-timeout"] == f"{PROVIDER_TIMEOUT_S:.1f}"
    assert body["imageUrl"] == body["images"][0] and len(body["images"]) == 2
    assert_durable(runtime, body["images"], served(stub, queued))


def test_content_reference_image_runs_the_edit_variant_with_image_urls(
    runtime: LocalRuntime, stub: FalStub
) -> None:
    before = len(stub.queue)
    status, _, body = post(
        runtime,
        "/api/content/image",
        {"prompt": "the same koi, at night", "reference_image_url": REF_URI, "aspect_ratio": "1:1"},
    )
    assert status == 200, body
    [queued] = new_requests(stub, before)
    assert queued.app == "fal-ai/nano-banana-2/edit"
    assert queued.arguments == {
        "prompt": "the same koi, at night",
        "num_images": 1,
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "output_format": "png",
        "image_urls": [REF_URI],
    }
    assert_durable(runtime, body["images"], served(stub, queued))


def test_a_loopback_reference_url_is_still_refused(runtime: LocalRuntime, stub: FalStub) -> None:
    """The local fal switch opens nothing for client-given URLs: the SSRF guard is untouched."""
    before = len(stub.requests)
    status, _, body = post(
        runtime, "/api/content/image", {"reference_image_url": f"{stub.base_url}/files/anything.png"}
    )
    assert status == 400, body
    assert body["field"] == "reference_image_url" and "loopback" in body["error"]
    assert stub.requests[before:] == []


# --------------------------------------------------------------------------- agent.ai dialect


@pytest.mark.parametrize(
    ("model", "app", "arguments"),
    [
        (
            "FLUX.1 [schnell]",
            "fal-ai/flux/schnell",
            {"num_images": 1, "image_size": {"width": 1024, "height": 576}, "output_format": "png"},
        ),
        ("Ideogram", "fal-ai/ideogram/v3", {"num_images": 1, "image_size": "landscape_16_9"}),
        (
            "Playground v3",
            "fal-ai/playground-v25",  # fal's Playground model reads `format`, not `output_format`
            {"num_images": 1, "image_size": {"width": 1024, "height": 576}, "format": "png"},
        ),
    ],
)
def test_agentai_models_run_on_their_fal_apps(
    runtime: LocalRuntime, stub: FalStub, model: str, app: str, arguments: dict[str, Any]
) -> None:
    before = len(stub.queue)
    status, _, body = post(
        runtime,
        "/action/generate_image",
        {"prompt": "a koi pond", "model": model, "model_style": "photo", "model_aspect_ratio": "16:9"},
    )
    assert status == 200, body
    [queued] = new_requests(stub, before)
    assert queued.app == app
    prompt = "a koi pond Photographic style, natural light, realistic detail."
    assert queued.arguments == {"prompt": prompt, **arguments}
    urls = [image["url"] for image in body["metadata"]["images"]]
    assert_durable(runtime, urls, served(stub, queued))
    assert body["response"].startswith(f'<img src="{urls[0]}" alt="a koi pond" />')


# --------------------------------------------------------------------------- OpenAI dialect


def test_openai_dialect_runs_a_fal_model_b64_json(runtime: LocalRuntime, stub: FalStub) -> None:
    before = len(stub.queue)
    status, _, body = post(
        runtime,
        "/v1/images/generations",
        {
            "model": "fal-ai/flux/schnell",
            "prompt": "a koi pond",
            "n": 2,
            "output_format": "jpeg",
            "response_format": "b64_json",
        },
    )
    assert status == 200, body
    [queued] = new_requests(stub, before)
    assert queued.app == "fal-ai/flux/schnell"
    assert queued.arguments == {
        "prompt": "a koi pond",
        "num_images": 2,
        "image_size": {"width": 1024, "height": 1024},
        "output_format": "jpeg",
    }
    delivered = [base64.b64decode(item["b64_json"]) for item in body["data"]]
    assert [pixels(d) for d in delivered] == [
        pixels(s) for s in served(stub, queued)
    ]  # signed, not re-encoded
    assert body["model"] == "fal-ai/flux/schnell" and body["output_format"] == "jpeg"
    assert not any("offline" in w for w in body["warnings"])


def test_openai_dialect_fal_model_url_holds_the_served_bytes(runtime: LocalRuntime, stub: FalStub) -> None:
    before = len(stub.queue)
    status, _, body = post(
        runtime, "/v1/images/generations", {"model": "fal-ai/nano-banana-2", "prompt": "a koi pond"}
    )
    assert status == 200, body
    [queued] = new_requests(stub, before)
    assert queued.app == "fal-ai/nano-banana-2"
    assert queued.arguments == {
        "prompt": "a koi pond",
        "num_images": 1,
        "aspect_ratio": "auto",
        "resolution": "1K",
        "output_format": "png",
    }
    delivered = [download(item["url"]) for item in body["data"]]
    assert [pixels(d) for d in delivered] == [pixels(s) for s in served(stub, queued)]


# --------------------------------------------------------------------------- faults

DIALECTS = {
    "content": ("/api/content/image", {"prompt": "a koi pond"}),
    "agentai": ("/action/generate_image", {"prompt": "a koi pond", "model": "FLUX.1 [schnell]"}),
    "openai": ("/v1/images/generations", {"model": "fal-ai/flux/schnell", "prompt": "a koi pond"}),
}


def error_of(dialect: str, status: int, body: Any) -> tuple[str, str | None]:
    """(message, code) of an error body, checked against the dialect's shape."""
    if dialect == "content":
        assert set(body) <= {"error", "field"} and isinstance(body["error"], str), body
        return body["error"], None
    if dialect == "agentai":
        assert body["status"] == status and isinstance(body["error"], str), body
        return body["error"], None
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, body
    return error["message"], error["code"]


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize(
    ("kind", "on", "fragment"),
    [("server_error", "submit", "HTTP 500"), ("malformed", "result", "malformed")],
)
def test_provider_failures_are_502_in_the_dialects_shape(
    runtime: LocalRuntime, stub: FalStub, dialect: str, kind: str, on: str, fragment: str
) -> None:
    path, request = DIALECTS[dialect]
    before = len(stub.submissions)
    stub.inject(kind, on=on)
    status, _, body = post(runtime, path, request)
    assert status == 502, body
    message, code = error_of(dialect, status, body)
    assert fragment in message and "fal" in message
    if dialect == "openai":
        assert body["error"]["type"] == "server_error" and code == "provider_error"
    assert len(stub.submissions) - before == 1  # a provider error is not retried


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_rate_limit_is_429_with_retry_after_in_the_dialects_shape(
    runtime: LocalRuntime, stub: FalStub, dialect: str
) -> None:
    path, request = DIALECTS[dialect]
    before = len(stub.submissions)
    stub.inject("rate_limit", on="submit", times=None, retry_after=11)
    started = time.monotonic()
    status, headers, body = post(runtime, path, request)
    elapsed = time.monotonic() - started
    assert status == 429, body
    assert headers.get("Retry-After") == "11"  # fal's, not our own limiter's
    message, code = error_of(dialect, status, body)
    assert "fal is rate limiting" in message
    if dialect == "openai":
        assert body["error"]["type"] == "rate_limit_exceeded" and code == "rate_limit_exceeded"
    # One layer retries 429s: the adapter, within its budget (here the 2 s time budget). fal's
    # Retry-After (11 s) does not fit, so it is handed to the client at once; the state machine
    # does not retry RateLimited.
    assert len(stub.submissions) - before == 1
    assert elapsed < PROVIDER_TIMEOUT_S


def test_a_request_fal_never_finishes_is_cancelled_and_504(runtime: LocalRuntime, stub: FalStub) -> None:
    path, request = DIALECTS["content"]
    before = len(stub.queue)
    stub.hold = True
    started = time.monotonic()
    status, _, body = post(runtime, path, request)
    assert status == 504, body
    message, _ = error_of("content", status, body)
    assert "did not finish" in message and "cancelled" in message
    attempts = new_requests(stub, before)
    assert len(attempts) == 2  # the state machine retries a provider timeout once (the sync budget)
    assert all(q.cancelled for q in attempts)
    assert time.monotonic() - started >= 2 * PROVIDER_TIMEOUT_S
