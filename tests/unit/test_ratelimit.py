"""Rate limits per key: requests per minute and concurrent generations, 429 with Retry-After and
X-RateLimit-Limit/Remaining/Reset (X-AgentAI-RateLimit-* on agent.ai), in each dialect's shape.
On the in-memory limit store; the DynamoDB store is exercised on moto in the integration tests.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from events import bearer, http_event, invoke, png
from imagemint.api import ratelimit
from imagemint.domain import auth
from imagemint.domain.auth import Principal
from imagemint.domain.models import Account
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import RateLimited
from imagemint.wiring import Deps, register_provider

OPENAI = ("openai_images", "/v1/images/generations", {"prompt": "a fox", "model": "gpt-image-1"})
CONTENT = ("content_image", "/api/content/image", {})
AGENTAI = ("agentai_image", "/action/generate_image", {"prompt": "a fox"})


class HeldProvider:
    name = "held"

    def __init__(self) -> None:
        self.inside = threading.Semaphore(0)
        self.release = threading.Event()
        self.release.set()

    def generate(self, call: ProviderCall) -> ProviderResult:
        self.inside.release()
        assert self.release.wait(10)
        img = ProviderImage(png(8, 8), "image/png", call.width, call.height)
        return ProviderResult(images=[img] * call.n, model=call.provider_model)


@pytest.fixture
def held(deps: Deps) -> HeldProvider:
    deps.limits = ratelimit.MemoryLimitStore()
    provider = HeldProvider()
    register_provider("openai", provider)
    register_provider("fal", provider)
    return provider


def post(route: tuple[str, str, dict[str, Any]], key: str, idem: str | None = None) -> Any:
    headers = bearer(key)
    if idem:
        headers["Idempotency-Key"] = idem
    return invoke(route[0], http_event("POST", route[1], headers=headers, json_body=route[2]))


def keyed(deps: Deps, account: Account, **limits: int) -> str:
    return auth.issue_key(deps.accounts, deps.settings, account.account_id, **limits)


@pytest.mark.parametrize(
    ("route", "prefix"),
    [(OPENAI, "x-ratelimit-"), (CONTENT, "x-ratelimit-"), (AGENTAI, "x-agentai-ratelimit-")],
    ids=["openai", "content", "agentai"],
)
def test_requests_per_minute_then_429_with_headers(
    deps: Deps, account: tuple[Account, str], held: HeldProvider, route: Any, prefix: str
) -> None:
    key = keyed(deps, account[0], rpm=3)
    start = time.time()
    remaining = []
    for _ in range(3):
        reply = post(route, key)
        assert reply.status == 200, reply.text
        assert reply.headers[f"{prefix}limit"] == "3"
        remaining.append(int(reply.headers[f"{prefix}remaining"]))
    assert remaining == [2, 1, 0]
    reply = post(route, key)
    assert reply.status == 429
    assert reply.headers[f"{prefix}limit"] == "3" and reply.headers[f"{prefix}remaining"] == "0"
    reset = int(reply.headers[f"{prefix}reset"])
    assert start < reset <= start + 61 and reset % 60 == 0
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    if prefix.startswith("x-agentai"):
        assert "x-ratelimit-limit" not in reply.headers
        assert reply.json["status"] == 429
    elif route is OPENAI:
        assert reply.json["error"]["type"] == "rate_limit_exceeded"
        assert reply.json["error"]["code"] == "rate_limit_exceeded"
    else:
        assert "Rate limit" in reply.json["error"]
    jobs = list(deps.jobs.jobs.values())  # type: ignore[attr-defined]
    assert len(jobs) == 3  # the refused request made no job and was charged nothing
    charged = sum(j.credits_charged for j in jobs)
    assert deps.accounts.get_account(account[0].account_id).credits == 1000 - charged


def test_limits_are_per_key(deps: Deps, account: tuple[Account, str], held: HeldProvider) -> None:
    first = keyed(deps, account[0], rpm=1)
    second = keyed(deps, account[0], rpm=1)
    assert post(OPENAI, first).status == 200
    assert post(OPENAI, first).status == 429
    assert post(OPENAI, second).status == 200


def test_the_deployment_default_applies_without_a_key_override(
    deps: Deps, account: tuple[Account, str], held: HeldProvider
) -> None:
    deps.settings = deps.settings.model_copy(update={"rate_limit_rpm": 2})
    key = account[1]
    assert [post(OPENAI, key).status for _ in range(3)] == [200, 200, 429]


def test_a_new_window_resets_the_count(deps: Deps, account: tuple[Account, str]) -> None:
    deps.limits = ratelimit.MemoryLimitStore()
    principal = auth.authenticate_key(deps.accounts, deps.settings, keyed(deps, account[0], rpm=1))
    t0 = 1_800_000_000.0  # the start of a window
    assert ratelimit.check_rate(deps, principal, at=t0 + 10).remaining == 0
    with pytest.raises(RateLimited) as exc:
        ratelimit.check_rate(deps, principal, at=t0 + 59)
    assert exc.value.details["retry_after"] == 1
    assert exc.value.response_headers["X-RateLimit-Reset"] == str(int(t0) + 60)
    assert ratelimit.check_rate(deps, principal, at=t0 + 60).remaining == 0


def test_keyless_legacy_calls_are_limited_per_account(deps: Deps, account: tuple[Account, str]) -> None:
    deps.limits = ratelimit.MemoryLimitStore()
    deps.settings = deps.settings.model_copy(update={"rate_limit_rpm": 2})
    query = {"prompt": "a cat", "account_id": account[0].account_id}
    statuses = [
        invoke("legacy_image", http_event("GET", "/api/image/generate", query=query)).status for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_concurrent_generations_are_limited_per_key(
    deps: Deps, account: tuple[Account, str], held: HeldProvider
) -> None:
    key = keyed(deps, account[0], concurrency=2, rpm=100)
    other = keyed(deps, account[0])
    held.release.clear()
    replies: list[Any] = []
    threads = [
        threading.Thread(target=lambda k=k: replies.append(post(OPENAI, k))) for k in (key, key, other)
    ]
    for t in threads[:2]:
        t.start()
    try:
        assert held.inside.acquire(timeout=10) and held.inside.acquire(timeout=10)
        third = post(OPENAI, key)
        threads[2].start()  # another key has its own slots: it gets into the provider
        assert held.inside.acquire(timeout=10)
    finally:
        held.release.set()
        for t in threads:
            t.join(10)
    assert third.status == 429
    assert int(third.headers["retry-after"]) >= 1
    assert third.headers["x-ratelimit-limit"] == "100"
    assert "at once" in third.json["error"]["message"]
    assert [r.status for r in replies] == [200, 200, 200]
    assert post(OPENAI, key).status == 200  # slots are given back


def test_a_slot_is_given_back_when_the_generation_fails(deps: Deps, account: tuple[Account, str]) -> None:
    deps.limits = ratelimit.MemoryLimitStore()
    principal = Principal(account[0], deps.accounts.get_key(auth.hash_key(deps.settings, account[1])))
    for _ in range(10):
        with pytest.raises(ValueError), ratelimit.concurrency_slot(deps, principal):
            raise ValueError("boom")
    with ratelimit.concurrency_slot(deps, principal):
        pass


def test_a_dead_lease_is_cleared(deps: Deps) -> None:
    store = ratelimit.MemoryLimitStore()
    t0 = 1_800_000_000.0
    assert store.acquire("k", "a", 1, t0)
    assert not store.acquire("k", "b", 1, t0 + 10)
    assert store.acquire("k", "b", 1, t0 + ratelimit.LEASE_S + 1)


def test_a_replay_needs_no_concurrency_slot(
    deps: Deps, account: tuple[Account, str], held: HeldProvider
) -> None:
    from imagemint.testing.memory import memory_idempotency_store

    deps.idempotency = memory_idempotency_store()
    key = keyed(deps, account[0], concurrency=1, rpm=100)
    first = post(OPENAI, key, "once")
    held.release.clear()
    running = threading.Thread(target=lambda: post(OPENAI, key))
    running.start()
    try:
        assert held.inside.acquire(timeout=10)  # the one slot is taken
        replay = post(OPENAI, key, "once")
    finally:
        held.release.set()
        running.join(10)
    assert replay.status == 200 and replay.text == first.text
