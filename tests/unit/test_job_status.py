"""A synchronous request polls its job's status alone and reads the whole record once (issue 11 item 8:
the API function's own work while it waits is what its memory size is chosen from)."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from imagemint.adapters.aws.jobs import DynamoJobStore
from imagemint.domain import service
from imagemint.domain.models import Job
from imagemint.testing.memory import MemoryJobStore


def job(job_id: str = "j1") -> Job:
    return Job(job_id=job_id, account_id="acct", dialect="legacy", model="gpt-image-2")


@pytest.fixture
def dynamo_jobs(monkeypatch: pytest.MonkeyPatch) -> Any:
    moto = pytest.importorskip("moto")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="jobs",
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoJobStore(client, "jobs")


@pytest.mark.parametrize("kind", ["dynamodb", "memory"])
def test_status_reads_the_status_alone(kind: str, request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue("dynamo_jobs") if kind == "dynamodb" else MemoryJobStore()
    assert store.status("missing") is None
    store.create(job())
    assert store.status("j1") == "ACCEPTED"
    store.update("j1", status="SUCCEEDED", result={"images": []})
    assert store.status("j1") == "SUCCEEDED"


class Counting:
    """The in-memory job store, counting whole-record reads and status reads."""

    def __init__(self) -> None:
        self.inner = MemoryJobStore()
        self.gets = self.statuses = 0

    def get(self, job_id: str) -> Job | None:
        self.gets += 1
        return self.inner.get(job_id)

    def status(self, job_id: str) -> str | None:
        self.statuses += 1
        return self.inner.status(job_id)


class Deps:
    def __init__(self, jobs: Counting) -> None:
        self.jobs = jobs


def test_a_waiter_polls_the_status_and_reads_the_record_once() -> None:
    jobs = Counting()
    jobs.inner.create(job())
    finish = threading.Timer(0.4, lambda: jobs.inner.update("j1", status="SUCCEEDED"))
    finish.start()
    try:
        done = service._wait(Deps(jobs), "j1", time.monotonic() + 5)  # type: ignore[arg-type]
    finally:
        finish.cancel()
    assert done is not None and done.status == "SUCCEEDED"
    assert jobs.statuses >= 3 and jobs.gets == 1


def test_a_waiter_past_its_deadline_reads_the_record_as_it_is() -> None:
    jobs = Counting()
    jobs.inner.create(job())
    done = service._wait(Deps(jobs), "j1", time.monotonic() + 0.2)  # type: ignore[arg-type]
    assert done is not None and done.status == "ACCEPTED" and jobs.gets == 1
