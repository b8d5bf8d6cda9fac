"""Time limits through the local runtime, as AWS enforces them (issue 11): HTTP API's 30 s
integration timeout (503), each function's Lambda timeout (``Sandbox.Timedout``), Express's 5 minutes;
and the answers that stay inside them: the legacy endpoint with a 20 s-per-image provider still
answers 200 in its seed's full shape, a POST past its ``Prefer: wait`` answers 202 and the job keeps
the result.

The provider is the offline one behind a delay (``register_provider``, the wiring's seam); the
runtime's limits are lowered through their public hooks (``server.INTEGRATION_TIMEOUT_S``,
``InProcessFunction.timeout_s``, ``motoext.EXPRESS_MAX_S``) to keep the module short.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from imagemint.adapters.providers.local import LocalProvider
from imagemint.domain.ports import ProviderCall, ProviderResult
from imagemint.wiring import register_provider
from imagemint_dev.local import motoext, server
from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = "/v1/images/generations"


class SlowProvider:
    """The offline provider, taking ``delay_s`` per image first (a slow real provider)."""

    name = "slow"

    def __init__(self) -> None:
        self.delay_s = 0.0
        self._inner = LocalProvider()

    def generate(self, call: ProviderCall) -> ProviderResult:
        time.sleep(self.delay_s * call.n)
        return self._inner.generate(call)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Any:
    runtime = start(root=ROOT, state_dir=tmp_path_factory.mktemp("deadlines"), port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def slow(rt: LocalRuntime) -> Any:
    provider = SlowProvider()
    register_provider("openai", provider)
    yield provider
    register_provider("openai", None)


def call(
    rt: LocalRuntime, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 runtime
        rt.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {rt.account['api_key']}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310
            raw = r.read()
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read() or b"null")


def wait_job(rt: LocalRuntime, job_id: str, until: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, job = call(rt, "GET", f"/api/jobs/{job_id}")
        assert status == 200, job
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def done(job: dict[str, Any]) -> bool:
    return job["status"] in ("SUCCEEDED", "PARTIAL", "FAILED")


def test_legacy_with_a_20_s_provider_answers_200_in_full_within_29_s(rt, slow):
    """The seed's full shape (image, ``imageUrl``, ``arweaveResult``, ``moment``) from a provider that
    takes 20 s, inside 29 s of the gateway receiving the request. The pipeline is warm (one request
    first: each function of the runtime is imported once, as a Lambda environment initialises once);
    what leaves room after 20 s of generation: the wait counts from the gateway's ``timeEpoch`` up to
    28 s, and a synchronous job's moment is sent at once (no batching window)."""
    query = f"?prompt=a+koi&account_id={rt.account['account_id']}"
    status, _, body = call(rt, "GET", "/api/image/generate" + query)  # warm-up: fast provider
    assert status == 200, body
    slow.delay_s = 20.0
    query = f"?prompt=a+slow+koi&account_id={rt.account['account_id']}"
    t0 = time.monotonic()
    status, _, body = call(rt, "GET", "/api/image/generate" + query)
    elapsed = time.monotonic() - t0
    assert elapsed < 29.0, f"answered in {elapsed:.1f} s"  # the bound: under API Gateway's limit
    assert status == 200, (elapsed, body)
    assert body["images"][0]["base64"] and body["images"][0]["mediaType"] == "image/png"
    assert body["imageUrl"] and body["arweaveResult"]["id"] and body["arweaveResult"]["signature"]
    assert body["moment"]["hash"] and body["moment"]["contractAddress"] and body["moment"]["tokenId"]


def test_legacy_past_its_deadline_answers_in_its_shape_with_the_job_that_keeps_running(rt, slow):
    """Slower than the deadline: the legacy error shape with ``jobId`` and ``jobUrl``, under 29 s; the
    job ends with the full record (image, archive, moment)."""
    slow.delay_s = 29.0
    query = f"?prompt=a+slower+koi&account_id={rt.account['account_id']}"
    t0 = time.monotonic()
    status, _, body = call(rt, "GET", "/api/image/generate" + query)
    elapsed = time.monotonic() - t0
    assert elapsed < 29.0, f"answered in {elapsed:.1f} s"
    assert status == 504, body
    assert body["jobUrl"].endswith(f"/api/jobs/{body['jobId']}") and body["error"]
    job = wait_job(rt, body["jobId"], done)
    assert job["status"] == "SUCCEEDED"
    result = job["result"]
    assert result["images"] and result["archive"][0]["record"]["id"] and result["moment"]["hash"]


def test_past_prefer_wait_a_post_answers_202_and_the_job_keeps_the_result(rt, slow):
    slow.delay_s = 3.0
    status, headers, body = call(
        rt, "POST", GENERATIONS, {"prompt": "a slow heron", "model": "gpt-image-2"}, {"Prefer": "wait=1"}
    )
    assert status == 202, body
    assert headers["preference-applied"] == "wait=1" and headers["location"] == body["url"]
    job = wait_job(rt, body["job_id"], done)
    assert job["status"] == "SUCCEEDED" and job["result"]["images"]


def test_a_function_past_the_integration_timeout_is_api_gateways_503(rt, slow, monkeypatch):
    monkeypatch.setattr(server, "INTEGRATION_TIMEOUT_S", 1.0)
    slow.delay_s = 3.0
    status, _, body = call(rt, "POST", GENERATIONS, {"prompt": "too slow", "model": "gpt-image-2"})
    assert status == 503 and body == {"message": "Service Unavailable"}


def test_a_step_past_its_lambda_timeout_fails_as_sandbox_timedout(rt, slow):
    fn = rt.stack.functions["GenerateStepFunction"]
    saved = fn.timeout_s
    fn.timeout_s = 1.0
    try:
        slow.delay_s = 3.0
        status, _, body = call(
            rt,
            "POST",
            GENERATIONS,
            {"prompt": "timed out", "model": "gpt-image-2"},
            {"Prefer": "respond-async"},
        )
        assert status == 202, body
        job = wait_job(rt, body["job_id"], done)
    finally:
        fn.timeout_s = saved
    assert job["status"] == "FAILED"
    assert "Sandbox.Timedout" in job["error"]["message"]


def test_an_express_execution_past_its_limit_stops_and_a_standard_one_does_not(rt, slow, monkeypatch):
    monkeypatch.setattr(motoext, "EXPRESS_MAX_S", 2.0)
    slow.delay_s = 3.0
    body = {"prompt": "a long one", "model": "gpt-image-2"}
    _, _, sync = call(rt, "POST", GENERATIONS, body, {"Prefer": "wait=0"})  # EXPRESS
    _, _, async_ = call(rt, "POST", GENERATIONS, body, {"Prefer": "respond-async"})  # STANDARD
    sfn = rt.stack.client("stepfunctions")
    express_arn = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])["type"] == "EXPRESS"
    )
    deadline = time.monotonic() + 30
    timed_out: list[str] = []
    while not timed_out and time.monotonic() < deadline:
        runs = sfn.list_executions(stateMachineArn=express_arn, statusFilter="TIMED_OUT")["executions"]
        timed_out = [e["name"] for e in runs if e["name"] == sync["job_id"]]
        time.sleep(0.2)
    assert timed_out, "the Express execution was not stopped at its limit"
    assert wait_job(rt, async_["job_id"], done)["status"] == "SUCCEEDED"  # STANDARD: no such limit
    job = wait_job(rt, sync["job_id"], lambda j: bool((j.get("result") or {}).get("images")))
    assert job["status"] == "RUNNING"  # Record never ran: the sweeper closes it (with its images)
