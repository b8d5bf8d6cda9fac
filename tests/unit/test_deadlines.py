"""Synchronous answers within API Gateway's limit (issue 11): a job that outlives the deadline is
answered 202 (``Prefer: wait=N``) or 504 in the dialect's shape with its job id, never left
unreachable; the job keeps running, keeps its charge, and its result lands on the job record.

The pipeline here starts nothing (the job stays RUNNING, as under a slow provider) until the test
finishes it with the inline pipeline, as the execution would.
"""

from __future__ import annotations

from typing import Any

import pytest

from events import bearer, http_event, invoke
from imagemint.api.http import HttpRequest, prefer_wait
from imagemint.domain.models import GenerationRequest
from imagemint.testing.inline import InlinePipeline
from imagemint.wiring import Deps

LEGACY = ("legacy_image", "/api/image/generate")
CONTENT = ("content_image", "/api/content/image")
GENERATIONS = ("openai_images", "/v1/images/generations")
AGENTAI = ("agentai_image", "/action/generate_image")
BODIES = {
    CONTENT: {"prompt": "a koi"},
    GENERATIONS: {"prompt": "a koi", "model": "gpt-image-2"},
    AGENTAI: {"prompt": "a koi"},
}


class Parked(InlinePipeline):
    """Starts the execution but does not run it: the job is RUNNING until :meth:`finish`."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        self.parked: list[dict[str, Any]] = []

    def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        self._deps.jobs.update(job_id, status="RUNNING")
        self.parked.append(payload)
        return f"parked:{job_id}"

    def finish(self) -> None:
        for payload in self.parked:
            super().run_sync(payload["job_id"], GenerationRequest.model_validate(payload["request"]))


@pytest.fixture
def slow(deps: Deps) -> Parked:
    deps.settings = deps.settings.model_copy(update={"sync_deadline_s": 0.2})
    deps.pipeline = pipeline = Parked(deps)
    return pipeline


def post(route: tuple[str, str], key: str, headers: dict[str, str] | None = None) -> Any:
    function, path = route
    return invoke(
        function,
        http_event("POST", path, headers={**bearer(key), **(headers or {})}, json_body=BODIES[route]),
    )


def legacy(account_id: str) -> Any:
    function, path = LEGACY
    return invoke(function, http_event("GET", path, query={"prompt": "a koi", "account_id": account_id}))


def job_of(deps: Deps, job_id: str) -> Any:
    job = deps.jobs.get(job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("route", [CONTENT, GENERATIONS, AGENTAI])
def test_past_the_deadline_a_post_dialect_answers_504_in_its_shape_with_the_job(deps, account, slow, route):
    acc, key = account
    reply = post(route, key)
    assert reply.status == 504, reply.text
    body = reply.json
    err = body["error"] if route == GENERATIONS else body
    if route == GENERATIONS:
        assert err["type"] == "server_error" and err["message"]
    else:
        assert isinstance(body["error"], str) and body["error"]
    job_id = err["job_id"]
    assert err["url"].endswith(f"/api/jobs/{job_id}")
    job = job_of(deps, job_id)
    assert job.status == "RUNNING" and job.credits_charged  # charged: the result will be retrievable
    slow.finish()  # the execution goes on without the caller
    assert job_of(deps, job_id).status == "SUCCEEDED" and job_of(deps, job_id).result["images"]


def test_past_the_deadline_the_legacy_endpoint_answers_its_error_shape_with_the_job(deps, account, slow):
    acc, _ = account
    reply = legacy(acc.account_id)
    assert reply.status == 504
    body = reply.json
    assert set(body) == {"error", "jobId", "jobUrl"}
    assert body["jobUrl"].endswith(f"/api/jobs/{body['jobId']}")
    slow.finish()
    assert job_of(deps, body["jobId"]).status in ("SUCCEEDED", "PARTIAL")  # PARTIAL: no archive here


@pytest.mark.parametrize("route", [CONTENT, GENERATIONS, AGENTAI])
def test_prefer_wait_answers_202_with_the_job_url_once_it_passes(deps, account, slow, route):
    _, key = account
    reply = post(route, key, {"Prefer": "wait=0"})
    assert reply.status == 202, reply.text
    assert reply.headers["preference-applied"] == "wait=0"
    assert reply.json["status"] == "RUNNING"
    assert reply.headers["location"] == reply.json["url"]
    assert reply.json["url"].endswith(f"/api/jobs/{reply.json['job_id']}")
    both = post(route, key, {"Prefer": "respond-async, wait=0"})
    assert both.status == 202 and both.headers["preference-applied"] == "respond-async, wait=0"
    slow.finish()


def test_prefer_wait_within_the_time_answers_as_usual(deps, account):
    _, key = account
    reply = post(GENERATIONS, key, {"Prefer": "wait=20"})
    assert reply.status == 200, reply.text
    assert reply.json["data"]


def test_respond_async_alone_still_answers_at_once_from_the_async_workflow(deps, account):
    _, key = account
    reply = post(CONTENT, key, {"Prefer": "respond-async"})
    assert reply.status == 202 and reply.headers["preference-applied"] == "respond-async"
    assert deps.pipeline.started and deps.pipeline.started[0]["mode"] == "async"  # type: ignore[union-attr]


def test_the_legacy_answer_carries_its_job_id(deps, account):
    acc, _ = account
    reply = legacy(acc.account_id)
    assert reply.status == 200, reply.text
    body = reply.json
    assert job_of(deps, body["jobId"]).status in ("SUCCEEDED", "PARTIAL")
    assert {"images", "imageUrl", "arweaveResult", "moment"} <= set(body)


def test_a_start_call_that_lost_its_answer_still_answers_with_the_result(deps, account):
    """StartExecution reached Step Functions but its answer was lost: the job ran, the caller finds it."""

    class LostAnswer(InlinePipeline):
        def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
            super().run(job_id, payload, name=name)
            raise ConnectionResetError("reset before the answer")

    _, key = account
    deps.pipeline = LostAnswer(deps)
    reply = post(GENERATIONS, key)
    assert reply.status == 200, reply.text


@pytest.mark.parametrize(
    ("header", "cap", "expected"),
    [
        ("", 25, None),
        ("respond-async", 25, None),
        ("wait=10", 25, 10),
        ("respond-async, wait=10", 25, 10),
        ("wait=100", 25, 25),
        ("handling=lenient; WAIT=3", 25, 3),
        ("wait=-1", 25, None),
        ("wait=soon", 25, None),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(header, cap, expected):
    req = HttpRequest.from_event(http_event("POST", "/x", headers={"Prefer": header or None}))
    assert prefer_wait(req, cap) == expected


def test_the_wait_counts_from_when_the_gateway_received_the_request() -> None:
    """API Gateway's 30 s include the function's cold start and admission: a request the gateway
    received 6 s ago may wait 22 s more of a 28 s deadline; a time no gateway could have written
    (in the future, or older than the deadline itself) is not trusted."""
    from imagemint.domain.service import wait_budget

    now = 1_800_000_000.0
    assert wait_budget(28.0, None, now - 6.0, now) == pytest.approx(22.0)
    assert wait_budget(28.0, 10, now - 6.0, now) == pytest.approx(4.0)  # Prefer: wait=10, from receipt too
    assert wait_budget(28.0, None, None, now) == 28.0  # not through the gateway: from now
    assert wait_budget(28.0, None, now + 5.0, now) == 28.0  # from the future: ignored
    assert wait_budget(28.0, None, now - 3600.0, now) == 28.0  # an hour ago: not a live request's
    assert wait_budget(28.0, None, now - 28.0, now) == 0.0  # out of time: answer now


def test_the_gateway_receipt_time_reaches_the_request() -> None:
    event = http_event("GET", "/api/image/generate")
    req = HttpRequest.from_event(event)
    assert req.received_at == event["requestContext"]["timeEpoch"] / 1000
    del event["requestContext"]["timeEpoch"]
    assert HttpRequest.from_event(event).received_at is None
