"""Credits: the price of a request from the model registry, one charge before generation, a refund
exactly once when the job fails, the undelivered part back, 402 in each dialect's shape, a ledger line
per job. On the in-memory fakes; the same rules under concurrency on DynamoDB semantics are in
``tests/integration/test_accounts_local.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from events import LambdaContext, bearer, http_event, invoke, load_function, png
from imagemint.domain import auth, credits, steps
from imagemint.domain.models import Account, LedgerEntry
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import ProviderError
from imagemint.wiring import Deps, register_provider

GENERATIONS = ("openai_images", "/v1/images/generations")
CONTENT = ("content_image", "/api/content/image")
AGENTAI = ("agentai_image", "/action/generate_image")
LEGACY = ("legacy_image", "/api/image/generate")


class FakeProvider:
    """Answers ``deliver(n)`` images per call (default all), or raises ``fail``."""

    name = "fake"

    def __init__(self, *, fail: Exception | None = None, short_by: int = 0) -> None:
        self.fail = fail
        self.short_by = short_by
        self.usage: tuple[int, int, int] | None = None  # (input, of which image, output) tokens
        self.calls: list[ProviderCall] = []

    def generate(self, call: ProviderCall) -> ProviderResult:
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail
        k = max(0, call.n - self.short_by)
        image = ProviderImage(png(call.width // 64, call.height // 64), "image/png", call.width, call.height)
        result = ProviderResult(images=[image] * k, model=call.provider_model, metadata={"provider": "fake"})
        if self.usage is not None:
            result.prompt_tokens, result.input_image_tokens, result.completion_tokens = self.usage
        return result


@pytest.fixture
def fake() -> FakeProvider:
    provider = FakeProvider()
    register_provider("openai", provider)
    register_provider("fal", provider)
    return provider


def make_account(deps: Deps, credits_: int) -> tuple[Account, str]:
    return auth.create_account(deps.accounts, deps.settings, name="buyer", credits=credits_)


def balance(deps: Deps, account: Account) -> int:
    current = deps.accounts.get_account(account.account_id)
    assert current is not None
    return current.credits


def generations(key: str, **body: Any) -> Any:
    body.setdefault("prompt", "a lighthouse")
    body.setdefault("model", "gpt-image-2")
    body.setdefault("quality", "medium")  # $0.05268 at 1024x1024: 53 credits an image
    return invoke("openai_images", http_event("POST", GENERATIONS[1], headers=bearer(key), json_body=body))


def only_job(deps: Deps) -> Any:
    (job,) = deps.jobs.jobs.values()  # type: ignore[attr-defined]
    return job


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    ("usd", "expected"),
    [
        (0.042, 42),  # no float error turns this into 43
        (0.063, 63),
        (0.167, 167),
        (0.25, 250),
        (0.08, 80),
        (0.003, 3),  # FLUX schnell
        (0.0105, 11),  # a fraction of a credit rounds up
        (0.0001, 1),  # every image costs at least one credit
        (0.0, 1),
    ],
)
def test_credits_per_image(usd: float, expected: int) -> None:
    assert credits.credits_per_image(usd) == expected


def test_one_credit_is_a_tenth_of_a_cent() -> None:
    assert credits.usd(1000) == 1.0
    assert credits.quote(0.042, 3).total == 126


# --------------------------------------------------------------------------- charging


def test_a_generation_is_charged_price_times_n_with_a_ledger_line(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    reply = generations(key, n=3, size="1536x1024", quality="high")
    assert reply.status == 200, reply.text
    assert balance(deps, account) == 1000 - 3 * 165  # gpt-image-2 1536x1024 high: $0.16464
    job = only_job(deps)
    assert job.credits_charged == 495 and job.credits_refunded == 0
    entry = deps.accounts.get_ledger(account.account_id, job.job_id)
    assert entry is not None
    assert (entry.kind, entry.credits, entry.per_image, entry.images) == ("job", 495, 165, 3)
    assert (entry.model, entry.dialect, entry.refunded, entry.refunded_at) == (
        "gpt-image-2",
        "openai",
        0,
        None,
    )


@pytest.mark.parametrize(
    ("route", "body", "expected"),
    [
        (CONTENT, {"num_images": 2}, 160),  # nano-banana-2 at 1K: $0.08 an image
        (CONTENT, {"num_images": 1, "resolution": "4K"}, 160),
        (AGENTAI, {"prompt": "x", "model": "FLUX.1 [schnell]"}, 3),
        # retired: priced as what ran (gpt-image-2 at 1024x1024, "auto" quoted at high: $0.21072)
        (GENERATIONS, {"prompt": "x", "model": "dall-e-2", "size": "256x256"}, 211),
        (GENERATIONS, {"prompt": "x", "model": "gpt-image-2.5-flare", "quality": "low", "n": 2}, 12),
    ],
)
def test_each_dialect_charges_the_registry_price(
    deps: Deps, fake: FakeProvider, route: tuple[str, str], body: dict[str, Any], expected: int
) -> None:
    account, key = make_account(deps, 1000)
    reply = invoke(route[0], http_event("POST", route[1], headers=bearer(key), json_body=body))
    assert reply.status == 200, reply.text
    assert balance(deps, account) == 1000 - expected
    assert only_job(deps).credits_charged == expected


def test_legacy_is_charged_on_the_account_named(deps: Deps, fake: FakeProvider) -> None:
    account, _ = make_account(deps, 1000)
    reply = invoke(
        LEGACY[0], http_event("GET", LEGACY[1], query={"prompt": "cat", "account_id": account.account_id})
    )
    assert reply.status == 200, reply.text
    assert balance(deps, account) == 1000 - 211  # the default model, default ("auto") quality


def _402(route: tuple[str, str], key: str, account: Account) -> Any:
    if route == LEGACY:
        return invoke(
            route[0], http_event("GET", route[1], query={"prompt": "cat", "account_id": account.account_id})
        )
    body = {"prompt": "a cat"} if route != CONTENT else {}
    if route == GENERATIONS:
        body.update(model="gpt-image-2", quality="medium")
    return invoke(route[0], http_event("POST", route[1], headers=bearer(key), json_body=body))


@pytest.mark.parametrize("route", [LEGACY, CONTENT, GENERATIONS, AGENTAI], ids=lambda r: r[0])
def test_not_enough_credits_is_402_in_the_dialects_shape(
    deps: Deps, fake: FakeProvider, route: tuple[str, str]
) -> None:
    account, key = make_account(deps, 2)
    reply = _402(route, key, account)
    assert reply.status == 402, reply.text
    body = reply.json
    if route in (LEGACY, CONTENT):
        assert body["error"].startswith("Insufficient credits")
        assert body["available"] == 2 and body["required"] > 2
    elif route == GENERATIONS:
        err = body["error"]
        assert (err["type"], err["code"]) == ("insufficient_quota", "insufficient_quota")
        assert err["available"] == 2 and err["required"] == 53
        assert "53" in err["message"] and "2" in err["message"]
    else:
        assert body["status"] == 402 and body["error"].startswith("Insufficient credits")
        assert body["available"] == 2 and body["required"] > 2
    # Nothing was taken and nothing ran; the job says why it stopped.
    assert balance(deps, account) == 2
    assert fake.calls == []
    job = only_job(deps)
    assert job.status == "FAILED" and job.error["code"] == "insufficient_credits"
    assert deps.accounts.get_ledger(account.account_id, job.job_id) is None


def test_exact_balance_is_enough_and_ends_at_zero(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 106)
    assert generations(key, n=2).status == 200
    assert balance(deps, account) == 0
    assert generations(key).status == 402
    assert balance(deps, account) == 0


def test_a_job_is_never_charged_twice(deps: Deps) -> None:
    account, _ = make_account(deps, 100)
    entry = LedgerEntry(account_id=account.account_id, entry_id="job-1", credits=30, per_image=30, images=1)
    deps.accounts.charge_job(entry)
    deps.accounts.charge_job(entry)
    assert balance(deps, account) == 70


# --------------------------------------------------------------------------- refunds


def test_a_failed_job_gets_its_credits_back(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    fake.fail = ProviderError("the provider is down")
    reply = generations(key, n=2)
    assert reply.status == 502
    assert balance(deps, account) == 1000
    job = only_job(deps)
    assert job.status == "FAILED"
    assert (job.credits_charged, job.credits_refunded) == (106, 106)
    entry = deps.accounts.get_ledger(account.account_id, job.job_id)
    assert entry is not None and entry.refunded == 106 and entry.refund_reason == "failure"


def test_the_failure_path_running_again_refunds_once(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    fake.fail = ProviderError("the provider is down")
    assert generations(key).status == 502
    job = only_job(deps)
    assert balance(deps, account) == 1000
    error = {"Error": "ProviderError", "Cause": "{}"}
    # Step Functions retries the RecordFailure task: the same step, twice more, directly and through
    # the record step's real handler.
    steps.record_failure(deps, job.job_id, error)
    record_step = load_function("record_step").lambda_handler
    record_step({"action": "failure", "job_id": job.job_id, "error": error}, LambdaContext())
    assert balance(deps, account) == 1000
    assert deps.jobs.get(job.job_id).credits_refunded == 53


def test_concurrent_runs_of_the_failure_path_refund_once(deps: Deps) -> None:
    account, _ = make_account(deps, 100)
    entry = LedgerEntry(account_id=account.account_id, entry_id="job-2", credits=40, per_image=40, images=1)
    deps.accounts.charge_job(entry)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def refund() -> None:
        barrier.wait()
        results.append(deps.accounts.refund_job(account.account_id, "job-2", 40, reason="failure"))

    threads = [threading.Thread(target=refund) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert balance(deps, account) == 100


def test_fewer_images_than_asked_refunds_the_undelivered_part(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    fake.short_by = 1
    reply = generations(key, n=3, response_format="b64_json")
    assert reply.status == 200, reply.text
    assert len(reply.json["data"]) == 2
    assert balance(deps, account) == 1000 - 2 * 53
    job = only_job(deps)
    assert (job.credits_charged, job.credits_refunded) == (159, 53)
    entry = deps.accounts.get_ledger(account.account_id, job.job_id)
    assert entry is not None and entry.refund_reason == "undelivered"
    # The success path running again (a Step Functions retry of Record) gives nothing more.
    steps.record(deps, job.job_id, job.result)
    assert balance(deps, account) == 1000 - 2 * 53


def test_token_usage_trues_the_charge_down_to_the_real_cost(deps: Deps, fake: FakeProvider) -> None:
    """ "auto" quality is quoted at high ($0.21072 an image); OpenAI's usage says what it really cost."""
    account, key = make_account(deps, 1000)
    fake.usage = (120, 20, 2 * 1756)  # 100 text + 20 image input tokens, two medium images out
    reply = generations(key, n=2, quality=None, response_format="b64_json")
    assert reply.status == 200, reply.text
    real = (100 * 5 + 20 * 8 + 2 * 1756 * 30) / 1e6
    assert reply.json["usage"]["cost_usd"] == pytest.approx(real)
    job = only_job(deps)
    assert job.credits_charged == 2 * 211
    assert job.credits_charged - job.credits_refunded == 107 == balance_taken(deps, account, 1000)  # 106.02
    # and never above the quote: usage dearer than the quote keeps the quote
    fake.usage = (10, 0, 50_000)
    assert generations(key, quality="low").status == 200
    assert balance_taken(deps, account, 1000) == 107 + 6


def balance_taken(deps: Deps, account: Account, start: int) -> int:
    return start - balance(deps, account)


def test_a_pipeline_that_never_started_refunds(deps: Deps, fake: FakeProvider) -> None:
    class Broken:
        def run(self, job_id: str, payload: Any, *, name: str | None = None) -> str:
            raise ConnectionError("states endpoint unreachable")

    account, key = make_account(deps, 1000)
    deps.pipeline = Broken()
    reply = generations(key)
    assert reply.status == 500
    assert balance(deps, account) == 1000
    job = only_job(deps)
    assert job.status == "FAILED" and job.credits_refunded == 53


def test_charges_equal_what_was_delivered_under_mixed_outcomes(deps: Deps, fake: FakeProvider) -> None:
    """Sum of (charged - refunded) over the ledger == price of the images delivered, to the credit."""
    account, key = make_account(deps, 5000)
    delivered = 0
    for i in range(12):
        fake.fail = ProviderError("flaky") if i % 3 == 0 else None
        fake.short_by = 1 if i % 4 == 1 else 0
        reply = generations(key, n=1 + i % 3, response_format="b64_json")
        if reply.status == 200:
            delivered += len(reply.json["data"])
    _, ledger = deps.accounts.list_account_items(account.account_id)
    net = sum(e.credits - e.refunded for e in ledger)
    assert net == 53 * delivered
    assert balance(deps, account) == 5000 - net


def test_grants_add_credits_with_a_ledger_line_and_never_go_below_zero(deps: Deps) -> None:
    account, _ = make_account(deps, 10)
    grant = LedgerEntry(account_id=account.account_id, entry_id="grant-1", kind="grant", credits=90)
    assert deps.accounts.grant(grant) == 100
    take = LedgerEntry(account_id=account.account_id, entry_id="grant-2", kind="grant", credits=-200)
    with pytest.raises(Exception) as exc:
        deps.accounts.grant(take)
    assert type(exc.value).__name__ == "InsufficientCredits"
    assert balance(deps, account) == 100
    _, ledger = deps.accounts.list_account_items(account.account_id)
    assert [e.entry_id for e in ledger] == ["grant-1"]


def test_b64_json_too_large_to_deliver_is_refunded(deps, account):
    """A 400 for a b64_json answer over the response limit charges nothing."""
    from events import http_event, invoke

    acct, key = account
    before = deps.accounts.get_account(acct.account_id).credits
    deps.settings = deps.settings.model_copy(update={"response_limit_bytes": 10_000})
    body = {"prompt": "big", "model": "gpt-image-2", "response_format": "b64_json"}
    event = http_event(
        "POST", "/v1/images/generations", headers={"authorization": f"Bearer {key}"}, json_body=body
    )
    res = invoke("openai_images", event)
    assert res.status == 400 and "response_format" in res.text
    assert deps.accounts.get_account(acct.account_id).credits == before


class BalanceAtTerminal:
    """A job store (the real in-memory one, wrapped) that notes the account's balance at the moment
    a job's terminal status is written: what a sync caller, answering as soon as it reads that
    status, shows its client."""

    def __init__(self, deps: Deps) -> None:
        self.inner, self.deps = deps.jobs, deps
        self.seen: list[tuple[str, int]] = []

    def update(self, job_id: str, **fields: Any) -> Any:
        status = fields.get("status")
        if status in ("SUCCEEDED", "PARTIAL", "FAILED"):
            job = self.inner.get(job_id)
            account = self.deps.accounts.get_account(job.account_id)
            self.seen.append((status, account.credits))
        return self.inner.update(job_id, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failure_reads_failed_only_once_the_charge_is_back(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    deps.jobs = BalanceAtTerminal(deps)  # type: ignore[assignment]
    fake.fail = ProviderError("the provider is down")
    assert generations(key, n=2).status == 502
    assert deps.jobs.seen == [("FAILED", 1000)]  # type: ignore[attr-defined]


def test_a_short_delivery_reads_succeeded_only_once_settled(deps: Deps, fake: FakeProvider) -> None:
    account, key = make_account(deps, 1000)
    deps.jobs = BalanceAtTerminal(deps)  # type: ignore[assignment]
    fake.short_by = 1
    assert generations(key, n=2).status == 200
    assert deps.jobs.seen == [("SUCCEEDED", 1000 - 53)]  # type: ignore[attr-defined]
