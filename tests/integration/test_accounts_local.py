"""Accounts, keys, credits, idempotency and rate limits on the local runtime: real handlers over HTTP,
the real state machine (moto's ASL interpreter), DynamoDB semantics from moto's server (conditional
writes and transactions), the admin CLI in a subprocess.

Its own module: one local runtime per process at a time (moto's state is process-wide).
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from imagemint.domain import auth
from imagemint.domain.models import Account, now
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import ProviderError
from imagemint.wiring import Deps, get_deps, register_provider
from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IMAGEMINT = str(Path(sys.executable).with_name("imagemint"))
GENERATIONS = "/v1/images/generations"
PRICE = 53  # gpt-image-2, 1024x1024, medium: $0.05268 -> 53 credits


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start(root=ROOT, state_dir=tmp_path_factory.mktemp("state"), port=0) as runtime:
        yield runtime


@pytest.fixture
def deps(rt: LocalRuntime) -> Deps:
    return get_deps()


@pytest.fixture(autouse=True)
def no_overrides(rt: LocalRuntime) -> Any:
    yield
    register_provider("openai", None)
    register_provider("fal", None)


class Faulty:
    """A provider that fails or delivers fewer images on demand (picked per call)."""

    name = "faulty"

    def __init__(self, pick: Any) -> None:
        self.pick = pick  # () -> "ok" | "fail" | "short"

    def generate(self, call: ProviderCall) -> ProviderResult:
        import io

        from PIL import Image

        outcome = self.pick()
        if outcome == "fail":
            raise ProviderError("injected provider failure")
        k = call.n - 1 if outcome == "short" else call.n
        buf = io.BytesIO()
        Image.new("RGB", (call.width // 16, call.height // 16), (30, 60, 90)).save(buf, "PNG")
        img = ProviderImage(buf.getvalue(), "image/png", call.width, call.height)
        return ProviderResult(images=[img] * k, model=call.provider_model)


def http(
    rt: LocalRuntime, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        rt.base_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # our own 127.0.0.1 runtime
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def generate(rt: LocalRuntime, key: str, idem: str | None = None, **body: Any) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return http(
        rt,
        "POST",
        GENERATIONS,
        {"prompt": "a heron", "model": "gpt-image-2", "quality": "medium", **body},
        headers,
    )


def new_account(deps: Deps, credits: int, **key_limits: int) -> tuple[Account, str]:
    account, _ = auth.create_account(deps.accounts, deps.settings, name="it", credits=credits)
    key = auth.issue_key(deps.accounts, deps.settings, account.account_id, **key_limits)
    return account, key


def balance(deps: Deps, account: Account) -> int:
    current = deps.accounts.get_account(account.account_id)
    assert current is not None
    return current.credits


def jobs_of(rt: LocalRuntime, account: Account) -> list[dict[str, Any]]:
    ddb = rt.stack.client("dynamodb")
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    table = rt.stack.env["IMAGEMINT_JOBS_TABLE"]
    items = ddb.scan(TableName=table)["Items"]
    out = [{k: de.deserialize(v) for k, v in item.items()} for item in items]
    return [j for j in out if j["account_id"] == account.account_id]


# --------------------------------------------------------------------------- credits under load


def test_50_concurrent_requests_on_credit_for_20(rt: LocalRuntime, deps: Deps) -> None:
    account, key = new_account(deps, 20 * PRICE, rpm=1000, concurrency=100)
    lowest = [balance(deps, account)]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            lowest.append(balance(deps, account))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    barrier = threading.Barrier(50)

    def one(i: int) -> tuple[int, bytes]:
        barrier.wait()
        status, _, body = generate(rt, key, prompt=f"heron {i}")
        return status, body

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    elapsed = time.perf_counter() - t0
    done.set()
    watcher.join()

    statuses = [s for s, _ in results]
    final = balance(deps, account)
    print(
        f"\n50 concurrent on credit for 20: {statuses.count(200)} succeeded, "
        f"{statuses.count(402)} got 402, final balance {final}, lowest seen {min(lowest)}, "
        f"{elapsed:.2f} s"
    )
    assert statuses.count(200) == 20
    assert statuses.count(402) == 30
    for status, body in results:
        if status == 402:
            err = json.loads(body)["error"]
            assert err["code"] == "insufficient_quota" and err["required"] == PRICE
            assert 0 <= err["available"] < PRICE
    assert final == 0 and min(lowest) >= 0
    _, ledger = deps.accounts.list_account_items(account.account_id)
    assert len(ledger) == 20 and all(e.credits == PRICE and e.refunded == 0 for e in ledger)
    jobs = jobs_of(rt, account)
    assert sorted(j["status"] for j in jobs) == ["FAILED"] * 30 + ["SUCCEEDED"] * 20
    assert all(j["error"]["code"] == "insufficient_credits" for j in jobs if j["status"] == "FAILED")


def test_charges_equal_what_was_delivered_under_load_and_injected_failures(
    rt: LocalRuntime, deps: Deps
) -> None:
    rng = random.Random(7)
    lock = threading.Lock()

    def pick() -> str:
        with lock:
            return rng.choice(["ok", "ok", "fail", "short"])

    register_provider("openai", Faulty(pick))
    account, key = new_account(deps, 100_000, rpm=1000, concurrency=100)

    def one(i: int) -> tuple[int, bytes]:
        status, _, body = generate(rt, key, prompt=f"load {i}", n=1 + i % 3, response_format="url")
        return status, body

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(one, range(36)))
    delivered = sum(len(json.loads(b)["data"]) for s, b in results if s == 200)
    failed = sum(1 for s, _ in results if s == 502)
    assert delivered and failed  # both outcomes happened
    _, ledger = deps.accounts.list_account_items(account.account_id)
    net = sum(e.credits - e.refunded for e in ledger)
    print(f"\nmixed load: {delivered} images delivered, {failed} failed jobs, net charge {net}")
    assert net == PRICE * delivered
    assert balance(deps, account) == 100_000 - net


def test_a_failed_job_is_refunded_once_even_when_the_failure_path_runs_again(
    rt: LocalRuntime, deps: Deps
) -> None:
    register_provider("openai", Faulty(lambda: "fail"))
    account, key = new_account(deps, 1000)
    status, _, body = generate(rt, key, n=2)
    assert status == 502, body
    assert balance(deps, account) == 1000
    (job,) = jobs_of(rt, account)
    assert (
        job["status"] == "FAILED"
        and job["credits_charged"] == 2 * PRICE
        and job["credits_refunded"] == 2 * PRICE
    )
    # Step Functions retrying RecordFailure: the record step's Lambda, invoked twice more.
    lam = rt.stack.client("lambda")
    payload = {"action": "failure", "job_id": job["job_id"], "error": {"Error": "ProviderError", "Cause": ""}}
    for _ in range(2):
        r = lam.invoke(FunctionName=rt.stack.names["RecordStepFunction"], Payload=json.dumps(payload))
        assert "FunctionError" not in r, r["Payload"].read()
    assert balance(deps, account) == 1000
    entry = deps.accounts.get_ledger(account.account_id, job["job_id"])
    assert entry is not None and entry.refunded == 2 * PRICE and entry.refund_reason == "failure"
    # The store's own condition, without the step's early return: still once.
    assert deps.accounts.refund_job(account.account_id, job["job_id"], 84, reason="failure") is False
    assert balance(deps, account) == 1000


def test_undelivered_images_are_refunded_through_the_state_machine(rt: LocalRuntime, deps: Deps) -> None:
    register_provider("openai", Faulty(lambda: "short"))
    account, key = new_account(deps, 1000)
    status, _, body = generate(rt, key, n=3)
    assert status == 200, body
    assert len(json.loads(body)["data"]) == 2
    assert balance(deps, account) == 1000 - 2 * PRICE


# --------------------------------------------------------------------------- idempotency


def test_replays_return_the_same_body_and_charge_once(rt: LocalRuntime, deps: Deps) -> None:
    account, key = new_account(deps, 1000)
    first = generate(rt, key, "replay-1", response_format="b64_json")
    assert first[0] == 200
    replays = [generate(rt, key, "replay-1", response_format="b64_json") for _ in range(3)]
    for status, headers, body in replays:
        assert status == 200 and body == first[2]
        assert headers["idempotent-replayed"] == "true"
    assert balance(deps, account) == 1000 - PRICE
    assert len(jobs_of(rt, account)) == 1
    # The record is in the template's IdempotencyTable, with its TTL attribute.
    items = rt.stack.client("dynamodb").scan(TableName=rt.stack.env["IMAGEMINT_IDEMPOTENCY_TABLE"])["Items"]
    assert items and all("expiration" in i for i in items)


def test_concurrent_duplicates_run_once(rt: LocalRuntime, deps: Deps) -> None:
    account, key = new_account(deps, 1000, rpm=1000, concurrency=20)
    barrier = threading.Barrier(10)

    def one(_: int) -> tuple[int, dict, bytes]:
        barrier.wait()
        return generate(rt, key, "dup-1")

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    statuses = sorted(s for s, _, _ in results)
    assert set(statuses) <= {200, 409} and 200 in statuses and 409 in statuses
    for status, headers, body in results:
        if status == 409:
            assert json.loads(body)["error"]["type"] == "conflict_error" and int(headers["retry-after"]) >= 1
    ok_bodies = {b for s, _, b in results if s == 200}
    assert len(ok_bodies) == 1
    assert balance(deps, account) == 1000 - PRICE and len(jobs_of(rt, account)) == 1
    assert generate(rt, key, "dup-1")[2] in ok_bodies


def test_idempotency_keys_are_scoped_per_account(rt: LocalRuntime, deps: Deps) -> None:
    a, key_a = new_account(deps, 1000)
    b, key_b = new_account(deps, 1000)
    ra = generate(rt, key_a, "same")
    rb = generate(rt, key_b, "same")
    assert ra[0] == rb[0] == 200 and ra[2] != rb[2] and "idempotent-replayed" not in rb[1]
    assert balance(deps, a) == balance(deps, b) == 1000 - PRICE


# --------------------------------------------------------------------------- keys and limits over HTTP


def test_expired_and_revoked_keys_are_refused_and_never_logged(
    rt: LocalRuntime, deps: Deps, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account, key = new_account(deps, 1000)
    expired = auth.issue_key(deps.accounts, deps.settings, account.account_id, expires_at=now() - 1)
    revoked = auth.issue_key(deps.accounts, deps.settings, account.account_id)
    auth.revoke_key(deps.accounts, deps.settings, revoked)
    routes = [
        ("POST", GENERATIONS, {"prompt": "x", "model": "gpt-image-2"}, "Authorization", "Bearer {}"),
        ("POST", "/action/generate_image", {"prompt": "x"}, "Authorization", "Bearer {}"),
        ("POST", "/api/content/image", {}, "x-api-key", "{}"),
        ("GET", f"/api/image/generate?prompt=x&account_id={account.account_id}", None, "x-api-key", "{}"),
    ]
    for method, path, body, header, fmt in routes:
        for bad, word in ((expired, "expired"), (revoked, "revoked")):
            status, _, out = http(rt, method, path, body, {header: fmt.format(bad)})
            assert status == 401 and word in out.decode()
        status, _, _ = http(rt, method, path, body, {header: fmt.format(key)})
        assert status == 200
    assert balance(deps, account) < 1000
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "job accepted" in logged
    for secret in (key, expired, revoked):
        assert secret not in logged


def test_rate_limit_429_with_headers_over_http(rt: LocalRuntime, deps: Deps) -> None:
    account, key = new_account(deps, 1000, rpm=2)
    first = generate(rt, key)
    assert (
        first[0] == 200 and first[1]["x-ratelimit-limit"] == "2" and first[1]["x-ratelimit-remaining"] == "1"
    )
    assert generate(rt, key)[0] == 200
    status, headers, body = generate(rt, key)
    if status == 200:  # the minute turned between the calls: one more window to fill
        assert generate(rt, key)[0] == 200
        status, headers, body = generate(rt, key)
    assert status == 429
    assert headers["x-ratelimit-remaining"] == "0" and 1 <= int(headers["retry-after"]) <= 60
    assert int(headers["x-ratelimit-reset"]) > time.time()
    agent = http(rt, "POST", "/action/generate_image", {"prompt": "x"}, {"Authorization": f"Bearer {key}"})
    assert agent[0] == 429 and agent[1]["x-agentai-ratelimit-limit"] == "2"


def test_a_dead_concurrency_lease_is_cleared_on_dynamodb(rt: LocalRuntime, deps: Deps) -> None:
    store = deps.limits
    assert store is not None
    t0 = time.time()
    assert store.acquire("it-slot", "a", 2, t0)
    assert store.acquire("it-slot", "b", 2, t0)
    assert not store.acquire("it-slot", "c", 2, t0 + 1)
    store.release("it-slot", "a")
    assert store.acquire("it-slot", "c", 2, t0 + 2)
    assert not store.acquire("it-slot", "d", 2, t0 + 3)
    assert store.acquire("it-slot", "d", 2, t0 + 3 + 301)  # b and c died (no release): cleared


# --------------------------------------------------------------------------- the admin CLI


def cli(rt: LocalRuntime, *args: str, stdin: str | None = None) -> Any:
    res = subprocess.run(
        [IMAGEMINT, *args, "--state-dir", str(rt.stack.state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_cli_accounts_and_keys(rt: LocalRuntime, deps: Deps) -> None:
    created = cli(rt, "accounts", "create", "--name", "label", "--credits", "100", "--plan", "pro")
    account_id, first_key = created["account_id"], created["api_key"]
    credited = cli(rt, "accounts", "credit", account_id, "--amount", "400", "--note", "welcome")
    assert credited["credits"] == 500
    made = cli(rt, "keys", "create", "--account-id", account_id, "--name", "ci", "--expires-in-days", "1")
    second = made["api_key"]
    assert made["prefix"] == second[:14] and made["expires_at"]
    assert generate(rt, second)[0] == 200

    shown = cli(rt, "accounts", "show", account_id)
    assert shown["account"]["credits"] == 500 - PRICE and shown["account"]["plan"] == "pro"
    assert {k["prefix"] for k in shown["keys"]} == {first_key[:14], second[:14]}
    assert all(k["status"] == "active" for k in shown["keys"])
    assert shown["usage"] == {"jobs": 1, "charged": PRICE, "refunded": 0, "granted": 400}
    text = json.dumps(shown)
    assert first_key not in text and second not in text
    assert auth.hash_key(deps.settings, second) not in text

    assert cli(rt, "keys", "revoke", "--key", "-", stdin=second + "\n") == {"revoked": [second[:14]]}
    assert generate(rt, second)[0] == 401
    out = cli(rt, "keys", "revoke", "--account-id", account_id, "--prefix", first_key[:14])
    assert out == {"revoked": [first_key[:14]]}
    assert generate(rt, first_key)[0] == 401
    statuses = {k["prefix"]: k["status"] for k in cli(rt, "accounts", "show", account_id)["keys"]}
    assert set(statuses.values()) == {"revoked"}


def test_cli_refuses_a_debit_below_zero(rt: LocalRuntime) -> None:
    created = cli(rt, "accounts", "create", "--name", "small", "--credits", "5")
    res = subprocess.run(
        [IMAGEMINT, "accounts", "credit", created["account_id"], "--amount", "-6"]
        + ["--state-dir", str(rt.stack.state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "Insufficient credits" in res.stderr


def test_the_accounts_table_has_the_by_account_index(rt: LocalRuntime) -> None:
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=rt.stack.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    table = ddb.describe_table(TableName=rt.stack.env["IMAGEMINT_ACCOUNTS_TABLE"])["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-account"]
