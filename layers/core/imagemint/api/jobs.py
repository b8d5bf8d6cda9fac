"""Our own job endpoints, for the account that owns the job.

* ``GET /api/jobs/{id}``: the job's record (status, transitions, timings,
  results with durable image URLs, provenance, cost, webhook deliveries).
  Async requests (``Prefer: respond-async``) answer 202 with this URL.
* ``POST /api/jobs/{id}/resume``: a PARTIAL job (archive, metadata or mint
  failed after the images were made) runs again from where it stopped
  (``resume_from``), with the images it already has: nothing is generated
  or charged again. Answers 202 with the job URL; 409 unless the job is PARTIAL.

Auth: ``x-api-key`` or ``Authorization: Bearer``. Another account's job is a 404
(not a 403), so job ids cannot be probed. Errors: ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from imagemint.api.http import HttpRequest, guarded, plain_error_response, response
from imagemint.domain import auth, service
from imagemint.domain.models import JOB_ID, Job
from imagemint.domain.views import job_url, public_view
from imagemint.errors import Conflict, NotFound
from imagemint.wiring import Deps


def _owned(deps: Deps, req: HttpRequest) -> Job:
    account = auth.authenticate(deps.accounts, deps.settings, req.api_key())
    job_id = req.path_params.get("id", "")
    job = deps.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if job is None or job.account_id != account.account_id:
        raise NotFound("Job not found")
    return job


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        return response(200, public_view(_owned(deps, req), req.base_url))

    return run()


def handle_resume(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        job = _owned(deps, req)
        if job.status != "PARTIAL" or not job.resume_from:
            raise Conflict(f"Job is {job.status}; only a PARTIAL job can be resumed")
        job = service.resume(deps, job)
        url = job_url(req.base_url, job.job_id)
        return response(202, public_view(job, req.base_url), {"Location": url})

    return run()
