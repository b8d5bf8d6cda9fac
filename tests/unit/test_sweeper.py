"""The sweeper closes jobs whose execution died: images kept (PARTIAL / SUCCEEDED), charges returned."""

from __future__ import annotations

import time
from typing import Any

import pytest

from events import invoke_step
from imagemint.domain import credits, steps, sweeper
from imagemint.domain.models import GenerationRequest, Job, new_job_id
from imagemint.testing.memory import MemoryJobStore
from imagemint.wiring import Deps

LATER = 16 * 60  # past the default sweep_after_s (15 minutes)


def _job(deps: Deps, account: Any, **request: Any) -> tuple[str, GenerationRequest]:
    acc, _ = account
    req = GenerationRequest(
        prompt="stuck", model="gpt-image-1", dialect="openai", account_id=acc.account_id, **request
    )
    job = Job(
        job_id=new_job_id(),
        account_id=acc.account_id,
        dialect="openai",
        model=req.model,
        request=req.model_dump(exclude_none=True),
    )
    deps.jobs.create(job)
    credits.charge(deps, job, credits.quote(0.042, 1))
    return job.job_id, req


def _balance(deps: Deps, account: Any) -> int:
    return deps.accounts.get_account(account[0].account_id).credits


def test_a_job_that_never_started_is_failed_and_refunded(deps: Deps, account: Any) -> None:
    before = _balance(deps, account)
    job_id, _ = _job(deps, account)
    assert _balance(deps, account) == before - 42
    assert sweeper.sweep(deps) == {"SUCCEEDED": [], "PARTIAL": [], "FAILED": []}  # not stale yet
    out = sweeper.sweep(deps, now=time.time() + LATER)
    assert out["FAILED"] == [job_id]
    job = deps.jobs.get(job_id)
    assert job.status == "FAILED" and "before any image was made" in job.error["message"]
    assert _balance(deps, account) == before
    assert sweeper.sweep(deps, now=time.time() + LATER)["FAILED"] == []  # closed jobs are not read again
    assert _balance(deps, account) == before  # refunded once


def test_a_job_that_died_after_generating_keeps_its_images_and_can_be_resumed(
    deps: Deps, account: Any
) -> None:
    job_id, req = _job(deps, account, archive=True, mint=True)
    result = steps.generate(deps, job_id, req)  # the execution died after this step
    out = sweeper.sweep(deps, now=time.time() + LATER)
    assert out["PARTIAL"] == [job_id]
    job = deps.jobs.get(job_id)
    assert job.resume_from == "archive"
    assert job.result["images"] == [img.model_dump(exclude_none=True) for img in result.images]
    assert any("stopped after the images were made" in w for w in job.result["warnings"])
    assert all(deps.images.head(img.key) for img in result.images)


def test_a_job_without_provenance_that_died_after_generating_succeeds(deps: Deps, account: Any) -> None:
    before = _balance(deps, account)
    job_id, req = _job(deps, account)
    steps.generate(deps, job_id, req)
    assert sweeper.sweep(deps, now=time.time() + LATER)["SUCCEEDED"] == [job_id]
    assert deps.jobs.get(job_id).status == "SUCCEEDED"
    assert _balance(deps, account) == before - 42  # delivered: kept


def test_finished_jobs_are_left_alone(deps: Deps, account: Any) -> None:
    job_id, _ = _job(deps, account)
    deps.jobs.update(job_id, status="SUCCEEDED")
    assert sweeper.sweep(deps, now=time.time() + LATER) == {"SUCCEEDED": [], "PARTIAL": [], "FAILED": []}
    assert deps.jobs.get(job_id).status == "SUCCEEDED"


class RacingJobStore(MemoryJobStore):
    """Its query answers, then the job moves on before the sweeper claims it (a live execution)."""

    def stale_open_jobs(self, updated_before: float, limit: int) -> list[Job]:
        found = super().stale_open_jobs(updated_before, limit)
        for job in found:
            self.update(job.job_id, status="RUNNING")
        return found


def test_a_job_that_moved_since_the_query_is_not_touched(deps: Deps, account: Any) -> None:
    racing = RacingJobStore()
    deps.jobs = racing
    job_id, _ = _job(deps, account)
    assert sweeper.sweep(deps, now=time.time() + LATER)["FAILED"] == []
    assert racing.get(job_id).status == "RUNNING" and racing.get(job_id).error is None


@pytest.mark.usefixtures("account")
def test_the_scheduled_function_runs_the_sweep(deps: Deps) -> None:
    event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}}
    assert invoke_step("sweeper", event) == {"SUCCEEDED": [], "PARTIAL": [], "FAILED": []}


def test_a_job_that_died_before_signing_is_never_delivered_unsigned_and_resume_signs_it(
    deps: Deps, account: Any
) -> None:
    """Generate ran, Sign never did (the execution died between them): the sweep keeps the images
    but delivers none of them until a resume has signed them, then archives and mints as asked."""
    from imagemint import wiring
    from imagemint.adapters.c2pa.signer import C2paContentSigner, C2paCredentialReader
    from imagemint.domain import service, views
    from imagemint_dev.c2pa_certs import make_identity

    ours = make_identity("imagemint test")
    deps.settings = deps.settings.model_copy(update={"sign_mode": "c2pa"})
    wiring.override(content_signer=C2paContentSigner(ours.chain_pem, ours.key_pem))
    before = _balance(deps, account)
    job_id, req = _job(deps, account)
    made = steps.generate(deps, job_id, req)  # ... and the execution died here
    assert sweeper.sweep(deps, now=time.time() + LATER)["PARTIAL"] == [job_id]
    job = deps.jobs.get(job_id)
    assert job.resume_from == "sign"
    assert any(w.startswith("Signing the Content Credentials failed") for w in job.result["warnings"])
    assert views.public_view(job, "https://x")["result"]["image_urls"] == []  # nothing unsigned goes out

    service.resume(deps, job)  # the inline pipeline runs the state machine from Sign
    job = deps.jobs.get(job_id)
    assert job.status == "SUCCEEDED" and job.resume_from is None
    (img,) = job.result["images"]
    report = C2paCredentialReader(ours.root_pem).read(deps.images.get(img["key"]), img["media_type"])
    assert report.trusted and report.job_id == job_id and img["credentials"]["manifest_label"]
    assert img["sha256"] != made.images[0].sha256  # the signed bytes, recorded
    assert len(views.public_view(job, "https://x")["result"]["image_urls"]) == 1
    assert _balance(deps, account) == before - 42  # delivered once signed: charged once, kept
