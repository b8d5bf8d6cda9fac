"""Async mode and webhooks through the local runtime: ``Prefer: respond-async`` -> 202 + job URL, the
state machine started with StartExecution, the job's outcome POSTed (signed, retried) to a receiver.

Its own module: one local runtime per process at a time (moto's state is process-wide). The receiver
is a real HTTP server on 127.0.0.1 (``IMAGEMINT_WEBHOOK_ALLOW_LOOPBACK`` lets the runtime deliver there).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imagemint.domain import webhooks
from imagemint.settings import get_settings
from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A webhook receiver: records every delivery; answers ``fail_next`` deliveries with 500 first."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.deliveries.append((dict(self.headers), body))
                    failing = outer.fail_next > 0
                    outer.fail_next -= 1 if failing else 0
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_job(self, job_id: str) -> list[tuple[dict[str, str], dict]]:
        with self.lock:
            return [
                (h, json.loads(b)) for h, b in self.deliveries if json.loads(b)["data"]["job_id"] == job_id
            ]

    def raw_for_job(self, job_id: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b in self.deliveries if json.loads(b)["data"]["job_id"] == job_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    env = {"IMAGEMINT_WEBHOOK_ALLOW_LOOPBACK": "true", "IMAGEMINT_SWEEP_AFTER_S": "1"}
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("async"), port=0, extra_env=env)
    yield rt
    rt.stop()


def call(rt, method, path, body=None, headers=None):
    req = urllib.request.Request(
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
        with urllib.request.urlopen(req, timeout=60) as r:  # our own 127.0.0.1 runtime
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def wait_job(rt, job_id, statuses=("SUCCEEDED", "PARTIAL", "FAILED"), timeout=60.0, webhook=False):
    deadline = time.monotonic() + timeout
    while True:
        status, _, job = call(rt, "GET", f"/api/jobs/{job_id}")
        assert status == 200, job
        done = job["status"] in statuses and (not webhook or (job.get("webhook") or {}).get("delivered"))
        if done or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


ASYNC = {"Prefer": "respond-async"}


def test_content_async_answers_202_and_the_job_completes_with_a_signed_webhook(runtime, receiver):
    t0 = time.perf_counter()
    status, headers, body = call(
        runtime,
        "POST",
        "/api/content/image",
        {"prompt": "async poster", "webhook_url": receiver.url},
        ASYNC,
    )
    answered = time.perf_counter() - t0
    assert status == 202, body
    job_id = body["job_id"]
    assert body["url"] == f"{runtime.base_url}/api/jobs/{job_id}" == headers["Location"]
    assert headers["Preference-Applied"] == "respond-async"
    assert body["status"] == "ACCEPTED"
    job = wait_job(runtime, job_id, webhook=True)
    assert job["status"] == "SUCCEEDED" and job["mode"] == "async", job
    urls = job["result"]["image_urls"]
    assert len(urls) == 1 and urls[0].startswith(f"{runtime.base_url}/api/files/{job_id}/")
    with urllib.request.urlopen(urls[0], timeout=30) as r:  # redirected to the local store
        assert r.read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert job["result"]["cost_usd"] > 0

    (headers_, raw), *rest = receiver.raw_for_job(job_id)
    assert not rest
    secret = webhooks.secret_for(get_settings(), runtime.account["account_id"])
    assert webhooks.verify(secret, headers_, raw)
    assert not webhooks.verify(secret, headers_, raw.replace(b"SUCCEEDED", b"FAILED"))
    assert not webhooks.verify(webhooks.secret_for(get_settings(), "another-account"), headers_, raw)
    event = json.loads(raw)
    assert headers_["webhook-id"] == f"evt_{job_id}_succeeded"
    assert event["type"] == "job.succeeded" and event["data"]["result"]["image_urls"] == urls
    assert job["webhook"]["delivered"] is True and job["webhook"]["attempts"] == 1
    print(f"\nasync: 202 in {answered * 1000:.0f} ms")


def test_a_failing_receiver_is_retried_with_the_same_event_id(runtime, receiver):
    receiver.fail_next = 2
    status, _, body = call(
        runtime,
        "POST",
        "/action/generate_image",
        {"prompt": "retry me", "webhook_url": receiver.url},
        ASYNC,
    )
    assert status == 202, body
    job = wait_job(runtime, body["job_id"], webhook=True, timeout=90)
    got = receiver.for_job(body["job_id"])
    assert len(got) == 3, [h.get("webhook-id") for h, _ in got]
    assert len({h["webhook-id"] for h, _ in got}) == 1  # the receiver's idempotency key
    assert (
        len({h["webhook-timestamp"] + h["webhook-signature"] for h, _ in got}) == 3
    )  # each attempt signed anew
    assert job["webhook"] == {
        **job["webhook"],
        "attempts": 3,
        "delivered": True,
        "event_id": f"evt_{body['job_id']}_succeeded",
    }


def test_openai_async_and_a_failed_job_sends_job_failed(runtime, receiver):
    status, _, body = call(
        runtime,
        "POST",
        "/v1/images/generations",
        {"prompt": "async fox", "model": "gpt-image-1", "webhook_url": receiver.url},
        {"Prefer": "handling=lenient, respond-async"},  # respond-async among others (with wait=N: sync first)
    )
    assert status == 202, body
    assert wait_job(runtime, body["job_id"], webhook=True)["status"] == "SUCCEEDED"

    # The reference is refused when the generate step fetches it (a loopback address; nothing is dialled).
    status, _, body = call(
        runtime,
        "POST",
        "/api/content/image",
        {"prompt": "x", "reference_image_url": "http://127.0.0.1:9/ref.png", "webhook_url": receiver.url},
        ASYNC,
    )
    assert status == 202, body
    job = wait_job(runtime, body["job_id"], webhook=True)
    assert job["status"] == "FAILED" and job["error"]["param"] == "reference_image_url"
    ((headers, event),) = receiver.for_job(body["job_id"])
    assert event["type"] == "job.failed" and headers["webhook-id"].endswith("_failed")
    assert event["data"]["error"]["code"] == "input_refused"


def test_sync_request_with_a_webhook_gets_its_answer_and_one_delivery(runtime, receiver):
    status, _, body = call(
        runtime, "POST", "/api/content/image", {"prompt": "sync", "webhook_url": receiver.url}
    )
    assert status == 200, body
    job_id = body["imageUrl"].split("/api/files/")[1].split("/")[0]
    # The answer comes once the job is recorded; the one delivery follows it (NotifySync).
    assert (wait_job(runtime, job_id, webhook=True).get("webhook") or {}).get("delivered")
    ((_, event),) = receiver.for_job(job_id)
    assert event["type"] == "job.succeeded"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.7/hook", "private"),
        ("https://169.254.169.254/latest", "metadata"),
        ("https://[::ffff:192.168.1.1]/x", "private"),
        ("ftp://example.com/x", "https"),
        ("https://user:pw@127.0.0.1/x", "credentials"),
    ],
)
def test_webhook_urls_that_must_not_be_called_are_refused_in_each_dialect(runtime, url, why):
    # Literal addresses: refused before anything is resolved or dialled.
    status, _, body = call(runtime, "POST", "/api/content/image", {"prompt": "x", "webhook_url": url}, ASYNC)
    assert status == 400 and body["field"] == "webhook_url", body
    status, _, body = call(runtime, "POST", "/v1/images/generations", {"prompt": "x", "webhook_url": url})
    assert status == 400 and body["error"]["param"] == "webhook_url", body
    status, _, body = call(runtime, "POST", "/action/generate_image", {"prompt": "x", "webhook_url": url})
    assert status == 400 and body["param"] == "webhook_url", body


def test_a_replayed_async_request_returns_the_same_job(runtime):
    headers = {**ASYNC, "Idempotency-Key": "async-replay-1"}
    s1, _, b1 = call(runtime, "POST", "/api/content/image", {"prompt": "once"}, headers)
    s2, h2, b2 = call(runtime, "POST", "/api/content/image", {"prompt": "once"}, headers)
    assert s1 == s2 == 202 and b1["job_id"] == b2["job_id"]
    assert h2.get("Idempotent-Replayed") == "true"


def test_jobs_of_other_accounts_cannot_be_resumed_or_read(runtime):
    status, _, body = call(runtime, "POST", "/api/jobs/00000000-0000-0000-0000-000000000000/resume")
    assert status == 404 and body == {"error": "Job not found"}
    s, _, b = call(runtime, "POST", "/api/content/image", {"prompt": "done"})
    job_id = b["imageUrl"].split("/api/files/")[1].split("/")[0]
    status, _, body = call(runtime, "POST", f"/api/jobs/{job_id}/resume")
    assert status == 409 and "only a PARTIAL job" in body["error"]


def test_the_sweeper_closes_jobs_whose_execution_died(runtime):
    """The real SweeperFunction, invoked through Lambda (moto), reading the sparse open-jobs index."""
    from imagemint.adapters.aws.client import client
    from imagemint.domain import steps
    from imagemint.domain.models import GenerationRequest, Job, new_job_id
    from imagemint.wiring import get_deps

    deps = get_deps()
    acct = runtime.account["account_id"]
    request = GenerationRequest(
        prompt="orphan", model="gpt-image-1", dialect="openai", account_id=acct, archive=True
    )
    ids = []
    for generated in (True, False):
        job = Job(
            job_id=new_job_id(),
            account_id=acct,
            dialect="openai",
            model="gpt-image-1",
            request=request.model_dump(),
        )
        deps.jobs.create(job)
        if generated:  # the execution died after Generate
            steps.generate(deps, job.job_id, request)
        ids.append(job.job_id)
    done = deps.jobs.update(ids[0], status="RUNNING")  # still open
    assert done.status == "RUNNING"
    time.sleep(1.2)  # IMAGEMINT_SWEEP_AFTER_S=1 in this module
    lam = client("lambda", get_settings().region)
    out = lam.invoke(
        FunctionName=runtime.stack.function_name("SweeperFunction"),
        Payload=json.dumps({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}),
    )
    closed = json.loads(out["Payload"].read())
    assert ids[0] in closed["PARTIAL"] and ids[1] in closed["FAILED"], closed
    status, _, job = call(runtime, "GET", f"/api/jobs/{ids[0]}")
    # The execution died between Generate and Sign: the images are kept, not delivered unsigned, and a
    # resume starts at Sign.
    assert job["status"] == "PARTIAL" and job["resume_from"] == "sign" and job["result"]["image_urls"] == []
    status, _, job = call(runtime, "GET", f"/api/jobs/{ids[1]}")
    assert job["status"] == "FAILED"
    # closed jobs left the index: a second sweep finds neither
    again = json.loads(
        lam.invoke(FunctionName=runtime.stack.function_name("SweeperFunction"), Payload=b"{}")[
            "Payload"
        ].read()
    )
    assert ids[0] not in again["PARTIAL"] and ids[1] not in again["FAILED"]
