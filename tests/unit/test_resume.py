"""Resuming a PARTIAL job: it runs again from the step that failed, with the images it has.

Through the real handlers and the inline pipeline (the ASL's entry choice in-process): archiving
fails first (no Arweave wallet configured), then the deployment gets a wallet and the job is resumed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from events import http_event, png
from imagemint import wiring
from imagemint.adapters.arweave.wallet import generate_wallet
from imagemint.api import content, jobs
from imagemint.domain import steps
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.wiring import Deps, register_provider


class CountingProvider:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[ProviderCall] = []

    def generate(self, call: ProviderCall) -> ProviderResult:
        self.calls.append(call)
        image = ProviderImage(png(8, 8), "image/png", call.width, call.height)
        return ProviderResult(
            images=[image] * call.n, model=call.provider_model, metadata={"provider": "counting"}
        )


@pytest.fixture(scope="module")
def wallet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wallet") / "wallet.json"
    path.write_text(json.dumps(generate_wallet()))
    return path


@pytest.fixture
def provider(deps: Deps) -> Iterator[CountingProvider]:
    p = CountingProvider()
    register_provider("fal", p)
    wiring.reset("archive_store", "minter")
    yield p
    wiring.reset("archive_store", "minter")


def _resume(deps: Deps, key: str, job_id: str) -> Any:
    ev = http_event(
        "POST", f"/api/jobs/{job_id}/resume", headers={"x-api-key": key}, path_params={"id": job_id}
    )
    return jobs.handle_resume(ev, deps)


def test_a_partial_job_resumes_where_it_stopped_without_generating_again(
    deps: Deps, account: Any, provider: CountingProvider, wallet_file: Path
) -> None:
    acct, key = account
    ev = http_event(
        "POST",
        "/api/content/image",
        headers={"x-api-key": key},
        json_body={"prompt": "keep me", "archive": True},
    )
    resp = content.handle_image(ev, deps)
    assert resp.status_code == 200, resp.body
    (job,) = deps.jobs.jobs.values()
    assert job.status == "PARTIAL" and job.resume_from == "archive"
    assert any(w.endswith(steps.RESUME_NOTE) for w in job.result["warnings"])
    image = job.result["images"][0]
    balance = deps.accounts.get_account(acct.account_id).credits
    assert len(provider.calls) == 1

    deps.settings = deps.settings.model_copy(update={"arweave_wallet_file": str(wallet_file)})
    wiring.reset("archive_store", "minter")
    resp = _resume(deps, key, job.job_id)
    assert resp.status_code == 202, resp.body
    assert resp.headers["Location"] == f"https://api.test/api/jobs/{job.job_id}"
    done = deps.jobs.get(job.job_id)
    assert done.status == "SUCCEEDED", done
    assert done.resume_from is None and done.provenance_error is None
    assert len(provider.calls) == 1  # nothing generated again
    assert done.result["images"] == [image]  # the same image, archived
    (archived,) = done.result["archive"]
    data, media_type = wiring.archive_store(deps).read(archived["id"])
    assert media_type == "image/png" and deps.images.get(image["key"]) == data
    assert done.result["metadata_archive"]["uri"].startswith("ar://")
    assert not any(w.endswith(steps.RESUME_NOTE) for w in done.result["warnings"])
    assert deps.accounts.get_account(acct.account_id).credits == balance  # not charged again
    statuses = [t["status"] for t in done.transitions]
    assert statuses[-3:] == ["PARTIAL", "RUNNING", "SUCCEEDED"]

    again = _resume(deps, key, job.job_id)
    assert again.status_code == 409 and "only a PARTIAL job" in json.loads(again.body)["error"]


def test_a_resume_that_fails_again_stays_partial_and_can_be_resumed_later(
    deps: Deps, account: Any, provider: CountingProvider
) -> None:
    _, key = account
    ev = http_event(
        "POST", "/api/content/image", headers={"x-api-key": key}, json_body={"prompt": "p", "archive": True}
    )
    assert content.handle_image(ev, deps).status_code == 200
    (job,) = deps.jobs.jobs.values()
    assert _resume(deps, key, job.job_id).status_code == 202
    again = deps.jobs.get(job.job_id)
    assert again.status == "PARTIAL" and again.resume_from == "archive"
    assert sum(w.endswith(steps.RESUME_NOTE) for w in again.result["warnings"]) == 1  # one note, not two
    assert len(provider.calls) == 1


def test_only_the_owner_can_resume(deps: Deps, account: Any, provider: CountingProvider) -> None:
    from imagemint.domain import auth

    _, key = account
    ev = http_event(
        "POST", "/api/content/image", headers={"x-api-key": key}, json_body={"prompt": "p", "archive": True}
    )
    assert content.handle_image(ev, deps).status_code == 200
    (job,) = deps.jobs.jobs.values()
    _, other_key = auth.create_account(deps.accounts, deps.settings, name="other", credits=10)
    resp = _resume(deps, other_key, job.job_id)
    assert resp.status_code == 404 and json.loads(resp.body) == {"error": "Job not found"}
    assert deps.jobs.get(job.job_id).status == "PARTIAL"
