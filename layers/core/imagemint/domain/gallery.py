"""What the gallery shows of a job: its images, prompt, model, cost, provenance links and the verify
verdict as a person reads it (``GET /gallery``, ``GET /api/gallery``, ``GET /moments/{ref}``).

Data only: :mod:`imagemint.api.gallery` renders it (escaped) as HTML. A job is *public* (has a page
anyone may open) once something of it is public already: an Arweave item or a moment. An account's
gallery lists its most recent jobs with images, read from its ledger (one line per charged job,
through the accounts table's ``by-account`` index), newest first.
"""

from __future__ import annotations

import re
import time
from typing import Any

from imagemint.domain import verify
from imagemint.domain.credits import usd
from imagemint.domain.models import JOB_ID, GenerationResult, Job
from imagemint.domain.ports import Deps
from imagemint.settings import Settings

#: How many jobs an account's gallery shows (each is verified on the way: keep it bounded).
GALLERY_LIMIT = 12
#: How long the signed image URLs in a page last.
IMAGE_URL_TTL_S = 3600
#: Block explorers of the chains moments are minted on (never for the embedded local chain).
EXPLORERS = {8453: "https://basescan.org", 84532: "https://sepolia.basescan.org"}
LINK_NAMES = {
    "image": "Image and Content Credentials",
    "arweave": "Arweave copy",
    "metadata": "Moment metadata",
    "token": "Token",
}
_OK_TEXT = {
    "image": "C2PA manifest valid and trusted, made by a trained algorithm, bytes match the recorded sha256",
    "arweave": "the item id is the hash of its signature and the gateway serves the signed image",
    "metadata": "points at the archived image and names this job, its hash and manifest",
    "token": "its on-chain uri is the archived metadata and the owner holds it",
}
_CHECK_TEXT = {
    "sha256": "the stored bytes do not match the recorded sha256",
    "c2pa_valid": "the C2PA manifest does not validate",
    "c2pa_trusted": "the C2PA manifest is not signed by a trusted certificate",
    "digital_source_type": "the manifest does not say it was made by a trained algorithm",
    "names_job": "it names another job",
    "recorded_manifest": "the manifest is not the one recorded for this job",
    "id_is_hash_of_signature": "the item id is not the hash of its signature",
    "gateway_bytes_verify": "the gateway's copy does not verify against its signature",
    "gateway_bytes_are_the_signed_image": "the gateway serves other bytes than the signed image",
    "every_image_archived": "not every image was archived",
    "image_is_the_arweave_item": "its image is not the archived item",
    "image_sha256": "it records another image hash",
    "manifest": "it records another manifest",
    "uri_is_the_metadata": "the token's on-chain uri is not the archived metadata",
    "owner_holds_it": "the owner does not hold the token",
    "ref_is_this_moment": "the token asked for is not this job's moment",
}
_NOT_RUN = {
    "arweave": "not archived",
    "metadata": "no metadata archived",
    "token": "not minted",
}
_STEP_OF = {"arweave": "archive", "metadata": "metadata", "token": "mint"}
_STEPS = ("archive", "metadata", "mint")  # the order they run in (a job resumes from the one that failed)
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]$")


def is_public(job: Job) -> bool:
    """Whether anyone may open the job's page: it has an Arweave item or a moment (already public)."""
    res = job.result or {}
    return bool(res.get("archive") or res.get("moment"))


def recent_jobs(deps: Deps, account_id: str, limit: int = GALLERY_LIMIT) -> list[Job]:
    """The account's most recent jobs that have images, newest first (at most ``limit``)."""
    _, ledger = deps.accounts.list_account_items(account_id)
    out: list[Job] = []
    for entry in reversed(ledger):
        if entry.kind != "job" or not JOB_ID.match(entry.entry_id):
            continue
        job = deps.jobs.get(entry.entry_id)
        if job is None or job.account_id != account_id or not (job.result or {}).get("images"):
            continue
        out.append(job)
        if len(out) >= limit:
            break
    return out


def _reason(check: str) -> str:
    m = _INDEXED.match(check)
    name, index = (m.group(1), int(m.group(2))) if m else (check, None)
    text = _CHECK_TEXT.get(name, name.replace("_", " "))
    return f"{text} (image {index + 1})" if index is not None else text


def readout(report: dict[str, Any] | None, job: Job, error: str | None = None) -> dict[str, Any]:
    """The verdict as a person reads it: per link ``ok`` / ``broken`` / ``not checked``, with the reason."""
    links = (report or {}).get("links") or {}
    out = []
    for name, label in LINK_NAMES.items():
        link = links.get(name)
        if report is None:
            state, reason = "not checked", f"the verdict could not be computed: {error or 'unknown error'}"
        elif link is None:
            state, reason = "not checked", _NOT_RUN.get(name, "not run")
            if job.resume_from in _STEPS and _STEPS.index(_STEP_OF[name]) >= _STEPS.index(job.resume_from):
                msg = (job.provenance_error or {}).get("message")
                reason += f": the {job.resume_from} step failed" + (f" ({msg})" if msg else "")
        elif link.get("ok"):
            state, reason = "ok", _OK_TEXT[name]
        else:
            state = "broken"
            bad = [_reason(k) for k, v in (link.get("checks") or {}).items() if not v]
            errors = [e for e in [link.get("error"), *[i.get("error") for i in link.get("items") or []]] if e]
            reason = "; ".join(bad + errors) or "a check failed"
        out.append({"link": name, "label": label, "state": state, "reason": reason})
    ok = report is not None and bool(report.get("ok"))
    broken = [r["label"] for r in out if r["state"] == "broken"]
    if report is None:
        summary = "Not checked"
    elif broken:
        summary = "Broken at " + ", ".join(broken)
    else:
        summary = "Verified" if ok else "Not verified"
    return {"ok": ok and not broken, "summary": summary, "links": out}


def token_link(settings: Settings, moment: dict[str, Any]) -> dict[str, Any]:
    """The token's reference, and an explorer URL only for Base / Base Sepolia (never the local chain)."""
    chain_id = moment.get("chainId")
    contract, token_id, tx = moment.get("contractAddress"), moment.get("tokenId"), moment.get("hash")
    out: dict[str, Any] = {
        "chain_id": chain_id,
        "contract": contract,
        "token_id": str(token_id) if token_id is not None else None,
        "tx": tx,
        "ref": f"{chain_id}:{contract}:{token_id}",
        "explorer_url": None,
        "tx_url": None,
        "local": settings.chain_mode == "embedded",
    }
    base = EXPLORERS.get(chain_id) if isinstance(chain_id, int) and not out["local"] else None
    if base and contract and token_id is not None:
        out["explorer_url"] = f"{base}/nft/{contract}/{token_id}"
        out["tx_url"] = f"{base}/tx/{tx}" if tx else None
    return out


def _http_url(url: Any) -> str | None:
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def moment_view(deps: Deps, job: Job, base_url: str, *, check: bool = True) -> dict[str, Any]:
    """Everything one gallery card shows, with the verify verdict (``check``) read for a person."""
    res = GenerationResult.model_validate(job.result)
    report, error = None, None
    if check:
        try:
            report = verify.verify(deps, job.job_id)
        except Exception as exc:  # a verdict that cannot be computed is "not checked", not a broken page
            error = str(getattr(exc, "message", exc))[:300]
    images = [
        {
            "url": deps.images.url(img.key, IMAGE_URL_TTL_S),
            "width": img.width,
            "height": img.height,
            "media_type": img.media_type,
            "sha256": img.sha256,
        }
        for img in res.images
    ]
    arweave = [
        {"id": a.get("id"), "uri": a.get("uri"), "url": _http_url(a.get("url"))} for a in res.archive or []
    ]
    md = res.metadata_archive or {}
    prompt = job.request.get("prompt")
    return {
        "job_id": job.job_id,
        "status": job.status,
        "created_at": job.created_at,
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.created_at)),
        "prompt": prompt if isinstance(prompt, str) else "",
        "model": res.model,
        "requested_model": res.requested_model,
        "provider": res.provider,
        "size": res.size,
        "cost": {
            "credits": job.credits_charged,
            "credits_refunded": job.credits_refunded,
            "credits_usd": usd(job.credits_charged - job.credits_refunded),
            "cost_usd": res.cost_usd,
            "provenance_cost_usd": res.provenance_cost_usd,
        },
        "images": images,
        "arweave": arweave,
        "metadata": {"id": md.get("id"), "uri": md.get("uri"), "url": _http_url(md.get("url"))}
        if md
        else None,
        "token": token_link(deps.settings, res.moment) if res.moment else None,
        "public": is_public(job),
        "page_url": f"{base_url}/moments/{job.job_id}" if is_public(job) else None,
        "verify_url": f"{base_url}/api/verify/{job.job_id}",
        "verdict": readout(report, job, error),
    }


def image_origin(deps: Deps) -> str:
    """Where the pages' images load from (the origin of a signed URL): their ``img-src``."""
    from urllib.parse import urlsplit

    parts = urlsplit(deps.images.url("images/origin", 60))
    return f"{parts.scheme}://{parts.netloc}"
