"""Ingest runs each object version once: redeliveries, client retries and lost responses find the job.

The pipeline here is the inline one behind a counter (how many executions were started); the
second test's pipeline runs the execution and then loses the answer, as a start call does
that reached Step Functions and timed out on the way back.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from events import load_event
from imagemint.domain import ingest
from imagemint.domain.models import Job
from imagemint.errors import Conflict
from imagemint.testing.inline import InlinePipeline
from imagemint.testing.memory import MemoryJobStore


class CountingPipeline(InlinePipeline):
    def __init__(self, deps: Any, *, lose_answers: int = 0) -> None:
        super().__init__(deps)
        self.executions: list[str] = []
        self.lose_answers = lose_answers

    def run(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        self.executions.append(job_id)
        arn = super().run(job_id, payload, name=name)  # the execution ran at the service ...
        if self.lose_answers:
            self.lose_answers -= 1
            raise ConnectionResetError("connection reset before the answer")  # ... its answer was lost
        return arn


def notification(account_id: str, name: str, body: bytes, deps: Any, **obj: str) -> dict[str, Any]:
    event = load_event("ingest.json", account_id=account_id)
    record = event["Records"][0]["s3"]
    record["object"]["key"] = f"ingest/{account_id}/{name}"
    record["object"].update(obj)
    deps.images.put(f"ingest/{account_id}/{name}", body, "application/json")
    return event


def charges(deps: Any, account_id: str) -> list[Any]:
    return [e for e in deps.accounts.list_account_items(account_id)[1] if e.kind == "job"]


REQUEST = json.dumps({"prompt": "a lighthouse", "archive": False}).encode()


def test_the_same_notification_three_times_runs_one_job(deps, account):
    acc, _ = account
    deps.pipeline = pipeline = CountingPipeline(deps)
    event = notification(acc.account_id, "req.json", REQUEST, deps)
    balance = deps.accounts.get_account(acc.account_id).credits

    outs = [ingest.handle(copy.deepcopy(event), deps) for _ in range(3)]

    assert [o["results"][0]["status"] for o in outs] == ["SUCCEEDED"] * 3
    assert len(pipeline.executions) == 1 and len(deps.jobs.jobs) == 1
    (charge,) = charges(deps, acc.account_id)
    assert deps.accounts.get_account(acc.account_id).credits == balance - charge.credits
    doc = json.loads(deps.images.get(f"results/{acc.account_id}/req.json.json"))
    assert doc["status"] == "SUCCEEDED" and doc["job_id"] == pipeline.executions[0]
    assert doc["result"]["images"]


def test_a_lost_start_answer_then_redelivery_finds_the_job(deps, account):
    acc, _ = account
    deps.pipeline = pipeline = CountingPipeline(deps, lose_answers=1)
    event = notification(acc.account_id, "lost.json", REQUEST, deps)

    first = ingest.handle(copy.deepcopy(event), deps)
    second = ingest.handle(copy.deepcopy(event), deps)

    assert len(pipeline.executions) == 1 and len(charges(deps, acc.account_id)) == 1
    (job,) = deps.jobs.jobs.values()
    assert job.job_id == pipeline.executions[0] and job.status == "SUCCEEDED"
    assert first["results"][0]["status"] == second["results"][0]["status"] == "SUCCEEDED"
    doc = json.loads(deps.images.get(f"results/{acc.account_id}/lost.json.json"))
    assert doc["job_id"] == job.job_id and doc["result"] == job.result


def test_a_new_version_of_the_key_is_a_new_job_and_the_same_bytes_are_not(deps, account):
    acc, _ = account
    deps.pipeline = pipeline = CountingPipeline(deps)
    first = notification(acc.account_id, "v.json", REQUEST, deps, eTag="aaa", sequencer="01")
    retry = notification(acc.account_id, "v.json", REQUEST, deps, eTag="aaa", sequencer="02")
    changed = notification(acc.account_id, "v.json", REQUEST, deps, eTag="bbb", sequencer="03")
    versioned = notification(acc.account_id, "v.json", REQUEST, deps, eTag="bbb", versionId="v9")

    for event in (first, retry, changed, versioned):
        ingest.handle(event, deps)

    assert len(pipeline.executions) == 3 and len(charges(deps, acc.account_id)) == 3


def test_an_open_job_found_again_keeps_the_result_document(deps, account):
    acc, _ = account
    deps.pipeline = pipeline = CountingPipeline(deps)
    event = notification(acc.account_id, "open.json", REQUEST, deps)
    ingest.handle(copy.deepcopy(event), deps)
    doc_key = f"results/{acc.account_id}/open.json.json"
    done = deps.images.get(doc_key)
    (job_id,) = pipeline.executions
    deps.jobs.update(job_id, status="RUNNING")  # as if a resume were running it now

    out = ingest.handle(copy.deepcopy(event), deps)

    assert out["results"][0]["status"] == "RUNNING" and deps.images.get(doc_key) == done
    assert len(pipeline.executions) == 1


def test_the_memory_job_store_refuses_an_existing_id():
    store = MemoryJobStore()
    job = Job(job_id="00000000-0000-4000-8000-00000000000a", account_id="a", dialect="ingest", model="m")
    store.create(job)
    with pytest.raises(Conflict):
        store.create(job)


def test_job_ids_are_uuids_from_bucket_key_and_version():
    a = ingest.object_job_id("b", "ingest/x/y.png", "eTag:1")
    assert a == ingest.object_job_id("b", "ingest/x/y.png", "eTag:1")
    assert len({a, ingest.object_job_id("c", "ingest/x/y.png", "eTag:1")}) == 2
    assert ingest.object_version({"eTag": '"abc"', "sequencer": "9"}) == "eTag:abc"
    assert ingest.object_version({"versionId": "v1", "eTag": "abc"}) == "versionId:v1"
    assert ingest.object_version({"sequencer": "9"}) == "sequencer:9"
