"""Idempotency-Key on every generation endpoint (Powertools idempotency on an in-memory persistence
layer with DynamoDB's put conditions): a replay gets the first body and is never charged again, a
duplicate in flight gets 409, another request under the same key 422, keys are scoped per account.
The same on DynamoDB semantics (moto) is in ``tests/integration/test_accounts_local.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from events import bearer, http_event, invoke, png
from imagemint.api import idempotency
from imagemint.api.ratelimit import MemoryLimitStore
from imagemint.domain import auth
from imagemint.domain.models import Account, LedgerEntry
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import ProviderError
from imagemint.testing.memory import memory_idempotency_store
from imagemint.wiring import Deps, register_provider

ROUTES = {
    "openai": (
        "openai_images",
        "/v1/images/generations",
        {
            "prompt": "a fox",
            "model": "gpt-image-2",
            "quality": "medium",
            "response_format": "url",
        },  # 53 credits
    ),
    "content": ("content_image", "/api/content/image", {"prompt": "a fox"}),
    "agentai": ("agentai_image", "/action/generate_image", {"prompt": "a fox"}),
}


class GatedProvider:
    """A provider that can be held inside ``generate`` (to have a request in flight) or made to fail."""

    name = "gated"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: Exception | None = None
        self.noisy = False  # incompressible images (large responses)
        self.calls = 0

    def generate(self, call: ProviderCall) -> ProviderResult:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        data = noise_png() if self.noisy else png(call.width // 64, call.height // 64)
        img = ProviderImage(data, "image/png", call.width, call.height)
        return ProviderResult(images=[img] * call.n, model=call.provider_model)


def noise_png(side: int = 200) -> bytes:
    import io
    import os

    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def gated(deps: Deps) -> GatedProvider:
    deps.limits = MemoryLimitStore()
    deps.idempotency = memory_idempotency_store()
    provider = GatedProvider()
    register_provider("openai", provider)
    register_provider("fal", provider)
    return provider


def post(name: str, key: str, idem: str | None = None, **body: Any) -> Any:
    function, path, base = ROUTES[name]
    headers = bearer(key)
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return invoke(function, http_event("POST", path, headers=headers, json_body={**base, **body}))


def balance(deps: Deps, account: Account) -> int:
    return deps.accounts.get_account(account.account_id).credits


def job_count(deps: Deps) -> int:
    return len(deps.jobs.jobs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ROUTES)
def test_a_replay_returns_the_first_body_and_charges_once(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider, name: str
) -> None:
    acc, key = account
    first = post(name, key, "order-1")
    assert first.status == 200, first.text
    after_first = balance(deps, acc)
    assert after_first < 1000
    for _ in range(3):
        again = post(name, key, "order-1")
        assert again.status == 200
        assert again.text == first.text
        assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert balance(deps, acc) == after_first
    assert gated.calls == 1 and job_count(deps) == 1


def test_without_the_header_every_request_runs(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    assert post("openai", key).status == 200
    assert post("openai", key).status == 200
    assert job_count(deps) == 2 and balance(deps, acc) == 1000 - 2 * 53


def test_another_key_is_another_request(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    a = post("openai", key, "a")
    b = post("openai", key, "b")
    assert a.status == b.status == 200 and a.text != b.text
    assert job_count(deps) == 2 and balance(deps, acc) == 1000 - 2 * 53


def test_keys_are_scoped_per_account(deps: Deps, account: tuple[Account, str], gated: GatedProvider) -> None:
    other, other_key = auth.create_account(deps.accounts, deps.settings, name="other", credits=1000)
    mine = post("openai", account[1], "shared-key")
    theirs = post("openai", other_key, "shared-key")
    assert mine.status == theirs.status == 200
    assert mine.text != theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert balance(deps, account[0]) == balance(deps, other) == 1000 - 53


def test_a_second_key_of_the_same_account_sees_the_replay(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    second = auth.issue_key(deps.accounts, deps.settings, acc.account_id)
    first = post("openai", key, "k")
    again = post("openai", second, "k")
    assert again.text == first.text and balance(deps, acc) == 1000 - 53


@pytest.mark.parametrize("name", ROUTES)
def test_a_duplicate_in_flight_is_409_in_the_dialects_shape(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider, name: str
) -> None:
    acc, key = account
    gated.release.clear()
    result: dict[str, Any] = {}
    first = threading.Thread(target=lambda: result.update(reply=post(name, key, "slow")))
    first.start()
    try:
        assert gated.entered.wait(10)
        dup = post(name, key, "slow")
    finally:
        gated.release.set()
        first.join(10)
    assert dup.status == 409
    assert int(dup.headers["retry-after"]) >= 1
    body = dup.json
    if name == "openai":
        assert body["error"]["type"] == "conflict_error" and body["error"]["param"] == "Idempotency-Key"
    elif name == "agentai":
        assert body["status"] == 409 and "still running" in body["error"]
    else:
        assert "still running" in body["error"]
    assert result["reply"].status == 200
    assert gated.calls == 1 and job_count(deps) == 1
    assert post(name, key, "slow").text == result["reply"].text


def test_the_same_key_with_another_body_is_422(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    assert post("openai", key, "k1", prompt="a fox").status == 200
    reply = post("openai", key, "k1", prompt="a wolf")
    assert reply.status == 422
    assert reply.json["error"]["param"] == "Idempotency-Key"
    assert reply.json["error"]["code"] == "idempotency_key_reused"
    assert job_count(deps) == 1 and balance(deps, acc) == 1000 - 53


def test_the_same_key_on_another_endpoint_is_422(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    assert post("openai", key, "k2").status == 200
    assert post("agentai", key, "k2").status == 422


def test_a_failed_first_request_is_tried_again(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    gated.fail = ProviderError("the provider is down")
    assert post("openai", key, "retry-me").status == 502
    assert balance(deps, acc) == 1000  # refunded
    gated.fail = None
    reply = post("openai", key, "retry-me")
    assert reply.status == 200 and "idempotent-replayed" not in reply.headers
    assert balance(deps, acc) == 1000 - 53
    assert post("openai", key, "retry-me").text == reply.text


def test_a_402_is_not_kept(deps: Deps, gated: GatedProvider) -> None:
    acc, key = auth.create_account(deps.accounts, deps.settings, name="poor", credits=10)
    assert post("openai", key, "topup").status == 402
    deps.accounts.grant(LedgerEntry(account_id=acc.account_id, entry_id="top-up", kind="grant", credits=100))
    assert post("openai", key, "topup").status == 200


@pytest.mark.parametrize("value", ["", "   ", "x" * 256, "tab\there"])
def test_an_invalid_key_is_400(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider, value: str
) -> None:
    reply = post("openai", account[1], value)
    assert reply.status == 400 and reply.json["error"]["param"] == "Idempotency-Key"
    assert gated.calls == 0


def test_a_large_response_is_kept_in_the_bucket_and_replayed_whole(
    deps: Deps, account: tuple[Account, str], gated: GatedProvider
) -> None:
    acc, key = account
    gated.noisy = True
    first = post("openai", key, "big", n=4, response_format="b64_json", size="1536x1024")
    assert first.status == 200
    assert len(first.text) > idempotency.INLINE_LIMIT
    assert any(k.startswith("idempotency/") for k in deps.images.objects)  # type: ignore[attr-defined]
    again = post("openai", key, "big", n=4, response_format="b64_json", size="1536x1024")
    assert again.text == first.text and again.headers["idempotent-replayed"] == "true"
    assert job_count(deps) == 1


def test_a_multipart_retry_with_a_new_boundary_is_the_same_request(deps: Deps) -> None:
    from imagemint.api.http import HttpRequest

    def req(boundary: str) -> HttpRequest:
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nfox\r\n--{boundary}--\r\n'
        ).encode()
        ctype = f"multipart/form-data; boundary={boundary}"
        event = http_event("POST", "/v1/images/edits", headers={"content-type": ctype}, body=body)
        return HttpRequest.from_event(event)

    assert idempotency.request_hash(req("aaa111")) == idempotency.request_hash(req("bbb222"))
    other = req("aaa111")
    other.body = other.body.replace(b"fox", b"cat")
    assert idempotency.request_hash(other) != idempotency.request_hash(req("aaa111"))


def test_without_a_configured_store_the_header_is_ignored(deps: Deps, account: tuple[Account, str]) -> None:
    assert deps.idempotency is None and not deps.settings.idempotency_table
    acc, key = account
    assert post("openai", key, "x").status == 200
    assert post("openai", key, "x").status == 200
    assert job_count(deps) == 2
