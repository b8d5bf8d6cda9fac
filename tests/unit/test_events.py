"""Every function in ``template.yaml`` has a sample event in ``events/``, and each sample drives its real
handler (``functions/<name>/app.py``) to its expected outcome on the in-memory stores.

The samples are what ``sam local invoke -e`` takes: HTTP API (v2) requests, an S3 ObjectCreated
notification, the EventBridge Scheduler event a ScheduleV2 target receives, and each state machine
task's input exactly as ``statemachine/generate.asl.json`` builds it (its ``Parameters`` /
``ItemSelector``). Placeholders (key, account id, job id) are replaced by ``events.load_event``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from events import (
    EVENTS_DIR,
    ROOT,
    http_event,
    invoke,
    invoke_step,
    load_event,
    png,
    rebuild,
)
from imagemint import wiring
from imagemint.adapters.arweave.wallet import generate_wallet
from imagemint.domain import webhooks
from imagemint.domain.models import GenerationRequest, Job, new_job_id
from imagemint.domain.ports import Moment
from imagemint.wiring import Deps
from imagemint_dev.local.template import Template

# function (its folder under functions/) -> its samples in events/
SAMPLES: dict[str, list[str]] = {
    "legacy_image": ["legacy_image.json"],
    "content_image": ["content_image.json"],
    "content_templates": ["content_templates.json"],
    "openai_images": ["openai_images.json", "openai_images_edit.json"],
    "agentai_image": ["agentai_image.json"],
    "files": ["files.json"],
    "jobs": ["jobs_get.json", "jobs_resume.json"],
    "docs": ["docs.json"],
    "generate_step": ["generate_step.json"],
    "sign_step": ["sign_step.json"],
    "verify": ["verify.json"],
    "gallery": ["gallery_page.json", "gallery.json", "moment_page.json"],
    "record_step": ["record_step.json"],
    "archive_step": ["archive_step_image.json", "archive_step_metadata.json"],
    "mint_step": ["mint_step.json"],
    "notify_step": ["notify_step.json"],
    "sweeper": ["sweeper.json"],
    "ingest": ["ingest.json"],
}


def _template() -> Template:
    return Template.load(ROOT / "template.yaml")


def test_every_function_in_the_template_has_a_sample_and_every_sample_a_function() -> None:
    functions = {Path(f.code_uri).name for f in _template().functions().values()}
    assert set(SAMPLES) == functions
    named = [name for names in SAMPLES.values() for name in names]
    on_disk = sorted(p.name for p in EVENTS_DIR.glob("*.json"))
    assert sorted(named) == on_disk  # each file named once, none left over


@pytest.mark.parametrize(
    ("function", "name"),
    [(f, n) for f, names in SAMPLES.items() for n in names if "routeKey" in (EVENTS_DIR / n).read_text()],
)
def test_http_samples_are_built_by_the_builder_and_routed_to_their_function(function: str, name: str) -> None:
    sample = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    assert rebuild(sample) == sample
    t = _template()
    folder = {logical: Path(f.code_uri).name for logical, f in t.functions().items()}
    routes = {r.route_key: folder[r.function] for r in t.routes()}
    assert routes.get(sample["routeKey"]) == function


# --------------------------------------------------------------------------- fakes at the seams


class RecordingMinter:
    """An in-memory :class:`~imagemint.domain.ports.MomentMinter`: token ids 1, 2, ... in order."""

    chain_id = 8453

    class signer:  # noqa: N801 - the attribute the real minter has
        address = "0x000000000000000000000000000000000000C0DE"

    def __init__(self) -> None:
        self.minted: list[tuple[str, str, str]] = []

    def ensure_contract(self, creator: str, contract_address: str | None, name: str) -> str:
        return contract_address or "0x" + hashlib.sha256(f"{creator}:{name}".encode()).hexdigest()[:40]

    def mint(self, metadata_uri: str, creator: str, contract_address: str, *, journal: Any = None) -> Moment:
        token_id = str(len(self.minted) + 1)
        tx = "0x" + hashlib.sha256(f"{metadata_uri}:{token_id}".encode()).hexdigest()
        if journal is not None:
            journal({"stage": "multicall", "hash": tx, "uri": metadata_uri, "token_id": token_id})
        self.minted.append((metadata_uri, creator, contract_address))
        return Moment(contractAddress=contract_address, tokenId=token_id, hash=tx, chainId=self.chain_id)

    def resume(self, pending: dict[str, Any], *, journal: Any = None) -> Moment | None:
        return None


@pytest.fixture(scope="module")
def wallet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wallet") / "wallet.json"
    path.write_text(json.dumps(generate_wallet()))
    return path


@pytest.fixture
def provenance(deps: Deps, wallet_file: Path) -> Iterator[RecordingMinter]:
    """Archiving on the embedded signed store (in the memory image store) and minting on a recording fake."""
    deps.settings = deps.settings.model_copy(update={"arweave_wallet_file": str(wallet_file)})
    minter = RecordingMinter()
    wiring.reset("archive_store", "minter")
    wiring.override(minter=minter)
    yield minter
    wiring.reset("archive_store", "minter")


def _job(deps: Deps, account_id: str, job_id: str | None = None, **fields: Any) -> str:
    job_id = job_id or new_job_id()
    deps.jobs.create(
        Job(job_id=job_id, account_id=account_id, dialect="legacy", model="gpt-image-1", **fields)
    )
    return job_id


# --------------------------------------------------------------------------- S3 and the scheduler


def test_ingest_sample_archives_and_mints_the_uploaded_image(
    deps: Deps, account: Any, provenance: Any
) -> None:
    acc, _ = account
    event = load_event("ingest.json", account_id=acc.account_id)
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    assert key == f"ingest/{acc.account_id}/koi pond.png"  # S3 URL-encodes the key in notifications
    data = png(64, 64)
    deps.images.put(key, data, "image/png")

    out = invoke_step("ingest", event)

    assert out == {"processed": 1, "results": [{"key": key, "status": "SUCCEEDED"}]}
    doc = json.loads(deps.images.get(f"results/{acc.account_id}/koi pond.png.json"))
    job = deps.jobs.get(doc["job_id"])
    assert doc["status"] == job.status == "SUCCEEDED"
    (image,) = job.result["images"]
    assert deps.images.get(image["key"]) == data
    (archived,) = job.result["archive"]
    assert wiring.archive_store(deps).read(archived["id"]) == (data, "image/png")
    assert provenance.minted == [
        (
            job.result["metadata_archive"]["uri"],
            RecordingMinter.signer.address,
            job.result["moment"]["contractAddress"],
        )
    ]


def test_sweeper_sample_closes_a_job_whose_execution_died(deps: Deps, account: Any) -> None:
    acc, _ = account
    stale = _job(deps, acc.account_id, status="RUNNING", updated_at=1.0)
    live = _job(deps, acc.account_id, status="RUNNING")
    event = load_event("sweeper.json")
    assert event["source"] == "aws.scheduler" and event["detail-type"] == "Scheduled Event"

    assert invoke_step("sweeper", event) == {"SUCCEEDED": [], "PARTIAL": [], "FAILED": [stale]}

    assert deps.jobs.get(stale).status == "FAILED"
    assert deps.jobs.get(live).status == "RUNNING"


# --------------------------------------------------------------------------- jobs API


def test_jobs_get_sample_shows_the_owner_its_job(deps: Deps, account: Any) -> None:
    acc, key = account
    job_id = _job(deps, acc.account_id)
    reply = invoke("jobs", load_event("jobs_get.json", key=key, job_id=job_id))
    assert reply.status == 200, reply.text
    assert reply.json["job_id"] == job_id and reply.json["status"] == "ACCEPTED"
    assert reply.json["url"].endswith(f"/api/jobs/{job_id}")
    unknown = invoke("jobs", load_event("jobs_get.json", key=key))
    assert unknown.status == 404 and unknown.json == {"error": "Job not found"}


def test_jobs_resume_sample_finishes_a_partial_job(deps: Deps, account: Any, wallet_file: Path) -> None:
    _, key = account
    wiring.reset("archive_store", "minter")  # no wallet yet: archiving fails, the job is PARTIAL
    made = invoke(
        "content_image",
        http_event(
            "POST",
            "/api/content/image",
            headers={"x-api-key": key},
            json_body={"prompt": "p", "archive": True},
        ),
    )
    assert made.status == 200, made.text
    (job,) = deps.jobs.jobs.values()  # type: ignore[attr-defined]
    assert job.status == "PARTIAL" and job.resume_from == "archive"

    deps.settings = deps.settings.model_copy(update={"arweave_wallet_file": str(wallet_file)})
    wiring.reset("archive_store", "minter")
    reply = invoke("jobs", load_event("jobs_resume.json", key=key, job_id=job.job_id))

    assert reply.status == 202, reply.text
    assert reply.headers["location"].endswith(f"/api/jobs/{job.job_id}")
    done = deps.jobs.get(job.job_id)
    assert done.status == "SUCCEEDED" and done.result["metadata_archive"]["uri"].startswith("ar://")


# --------------------------------------------------------------------------- state machine tasks


def test_archive_image_sample_archives_the_map_item(deps: Deps, account: Any, provenance: Any) -> None:
    acc, _ = account
    job_id = new_job_id()
    event = load_event("archive_step_image.json", job_id=job_id)
    image = event["image"]
    data = png(1024, 1024)
    assert image["key"] == f"images/{job_id}/0.png" and image["sha256"] == hashlib.sha256(data).hexdigest()
    _job(deps, acc.account_id, job_id)
    deps.images.put(image["key"], data, "image/png")

    out = invoke_step("archive_step", event)

    assert out["uri"] == f"ar://{out['id']}"
    assert wiring.archive_store(deps).read(out["id"]) == (data, "image/png")
    tags = {t["name"]: t["value"] for t in out["record"]["tags"]}
    assert tags["Job-Id"] == job_id and tags["SHA-256"] == image["sha256"] and tags["Image-Index"] == "0"
    assert deps.jobs.get(job_id).archive_0 == out["id"]


def test_archive_metadata_sample_archives_the_moment_document(
    deps: Deps, account: Any, provenance: Any
) -> None:
    acc, _ = account
    job_id = new_job_id()
    event = load_event("archive_step_metadata.json", job_id=job_id, account_id=acc.account_id)
    state = event["state"]
    assert state["request"]["archive"] is True and len(state["archives"]) == len(state["result"]["images"])
    _job(deps, acc.account_id, job_id)

    out = invoke_step("archive_step", event)

    data, media_type = wiring.archive_store(deps).read(out["id"])
    doc = json.loads(data)
    assert media_type == "application/json" and out["uri"] == f"ar://{out['id']}"
    assert doc["image"] == state["archives"][0]["uri"] and doc["description"] == state["request"]["prompt"]
    assert {"trait_type": "job_id", "value": job_id} in doc["attributes"]
    assert deps.jobs.get(job_id).archive_tx_metadata  # journalled before it was stored


def test_mint_sample_mints_once_and_records_the_moment(deps: Deps, account: Any, provenance: Any) -> None:
    acc, _ = account
    job_id = _job(deps, acc.account_id)
    event = load_event("mint_step.json", job_id=job_id, account_id=acc.account_id)
    assert event["metadata_uri"].startswith("ar://")

    out = invoke_step("mint_step", event)

    assert deps.jobs.get(job_id).moment == out
    assert out["tokenId"] == "1" and out["chainId"] == RecordingMinter.chain_id
    assert provenance.minted == [
        (event["metadata_uri"], RecordingMinter.signer.address, out["contractAddress"])
    ]
    assert invoke_step("mint_step", event) == out  # a re-run returns the recorded moment
    assert len(provenance.minted) == 1


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A webhook receiver on 127.0.0.1."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/imagemint", received
    server.shutdown()
    server.server_close()


@pytest.mark.loopback_sockets
def test_notify_sample_delivers_the_signed_outcome(deps: Deps, account: Any, receiver: Any) -> None:
    url, received = receiver
    acc, _ = account
    deps.settings = deps.settings.model_copy(update={"webhook_allow_loopback": True})
    request = GenerationRequest(
        prompt="p", model="gpt-image-1", dialect="openai", account_id=acc.account_id, webhook_url=url
    )
    job_id = _job(deps, acc.account_id, status="SUCCEEDED", request=request.model_dump(exclude_none=True))
    event = load_event("notify_step.json", job_id=job_id)

    out = invoke_step("notify_step", event)

    assert out["delivered"] is True and out["status_code"] == 204 and out["attempts"] == 1
    ((headers, body),) = received
    assert webhooks.verify(webhooks.secret_for(deps.settings, acc.account_id), headers, body)
    sent = json.loads(body)
    assert sent["type"] == "job.succeeded" and sent["data"]["job_id"] == job_id
    assert deps.jobs.get(job_id).webhook["delivered"] is True
