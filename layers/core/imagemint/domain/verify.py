"""Walk one job's provenance chain and say, link by link, whether it holds (``GET /api/verify/{ref}``).

``ref`` is a job id, an Arweave id (an archived image: the job id is read from
its C2PA manifest; the moment metadata: from its ``job_id``), or
``<chainId>:<contract>:<tokenId>`` (the token's ``uri`` leads to the metadata,
the metadata to the job). From the job the chain is walked in the order it was
made, each link checked against the one before it:

* ``image``: the bytes we deliver (our bucket) hash to the recorded sha256 and
  carry a C2PA manifest that validates and is trusted (our root, or the
  configured anchors), says ``trainedAlgorithmicMedia`` /
  ``compositeWithTrainedAlgorithmicMedia``, names this job and is the recorded one.
* ``arweave``: the item's id is base64url(sha256(signature)) of its recorded
  header, the gateway's bytes verify against that signature and are the signed
  image (same sha256, same manifest).
* ``metadata``: the archived metadata's ``image`` is that Arweave item, and it
  names this job, the image's sha256 and its manifest.
* ``token``: the on-chain ``uri(tokenId)`` is that metadata, and the owner the
  mint transferred the token to holds it.

A link whose step did not run (no archive asked, no mint) is ``null``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from imagemint import wiring
from imagemint.domain.credentials import UPLOAD
from imagemint.domain.models import JOB_ID, GenerationResult, Job, StoredImage
from imagemint.domain.ports import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    CREATED,
    OPENED,
    TRAINED_ALGORITHMIC_MEDIA,
    Deps,
)
from imagemint.errors import InvalidRequest, NotFound

ARWEAVE_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
TOKEN_REF = re.compile(r"^(\d{1,10}):(0x[0-9a-fA-F]{40}):(\d{1,78})$")
AI_SOURCE_TYPES = (TRAINED_ALGORITHMIC_MEDIA, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _id_of_signature(signature: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(_b64url_decode(signature)).digest()).rstrip(b"=").decode()


def _link(checks: dict[str, bool], **facts: Any) -> dict[str, Any]:
    return {"ok": all(checks.values()), "checks": checks, **facts}


def _read_archive(deps: Deps, tx_id: str) -> tuple[bytes | None, str | None]:
    try:
        data, _ = wiring.archive_store(deps).read(tx_id)
        return data, None
    except Exception as exc:  # integrity failures, missing items, an unreachable gateway: all red
        return None, str(getattr(exc, "message", exc))[:300]


# ---------------------------------------------------------------- resolving a ref


def resolve(deps: Deps, ref: str) -> tuple[Job, str]:
    """The job ``ref`` leads to, and what kind of ref it was."""
    ref = ref.strip()
    if JOB_ID.match(ref):
        job = deps.jobs.get(ref)
        if job is None:
            raise NotFound("No such job")
        return job, "job"
    if ARWEAVE_ID.match(ref):
        return _job_of_item(deps, ref), "arweave"
    m = TOKEN_REF.match(ref)
    if m:
        contract, token_id = m.group(2), int(m.group(3))
        try:
            uri = wiring.chain_reader(deps.settings).token_uri(contract, token_id)
        except Exception:
            raise NotFound("No such token") from None
        if not uri.startswith("ar://") or not ARWEAVE_ID.match(uri[5:]):
            raise NotFound("The token's uri is not an Arweave item we archived")
        return _job_of_item(deps, uri[5:]), "token"
    raise InvalidRequest("ref must be a job id, an Arweave id or <chainId>:<contract>:<tokenId>", param="ref")


def _job_of_item(deps: Deps, tx_id: str) -> Job:
    data, error = _read_archive(deps, tx_id)
    job_id = None
    if data is not None:
        try:
            doc = json.loads(data)
            job_id = doc.get("job_id") if isinstance(doc, dict) else None
        except (ValueError, UnicodeDecodeError):
            from imagemint.adapters.net.sniff import sniff_media_type

            media_type = sniff_media_type(data) or "image/png"
            job_id = wiring.credential_reader(deps.settings).read(data, media_type).job_id
    job = deps.jobs.get(job_id) if isinstance(job_id, str) and JOB_ID.match(job_id) else None
    if job is None:
        raise NotFound(f"Arweave item {tx_id} leads to no job of ours" + (f" ({error})" if error else ""))
    return job


# ---------------------------------------------------------------- walking the chain


def verify(deps: Deps, ref: str) -> dict[str, Any]:
    job, kind = resolve(deps, ref)
    if not job.result:
        raise NotFound("The job has no images yet")
    res = GenerationResult.model_validate(job.result)
    reader = wiring.credential_reader(deps.settings)
    links: dict[str, Any] = {"image": _image_link(deps, reader, job, res)}
    links["arweave"] = _arweave_link(deps, reader, res) if res.archive else None
    links["metadata"] = _metadata_link(deps, job, res) if res.metadata_archive and res.archive else None
    links["token"] = _token_link(deps, res, ref if kind == "token" else None) if res.moment else None
    return {
        "ref": ref,
        "ref_kind": kind,
        "job_id": job.job_id,
        "model": res.model,
        "ok": all(link["ok"] for link in links.values() if link is not None),
        "links": links,
    }


def declares_its_source(report: Any, provider: str) -> bool:
    """Made by a model: a ``c2pa.created`` action saying a trained algorithm made it. An upload
    (ingest): our ``c2pa.opened`` action, claiming no source type (we did not make it)."""
    if provider == UPLOAD:
        return report.action == OPENED and report.digital_source_type is None
    return report.action == CREATED and report.digital_source_type in AI_SOURCE_TYPES


def _credential_checks(report: Any, img: StoredImage, job_id: str, provider: str = "") -> dict[str, bool]:
    label = (img.credentials or {}).get("manifest_label")
    return {
        "c2pa_valid": report.valid,
        "c2pa_trusted": report.trusted,
        "digital_source_type": declares_its_source(report, provider),
        "names_job": report.job_id == job_id,
        "recorded_manifest": bool(label) and report.manifest_label == label,
    }


def _image_link(deps: Deps, reader: Any, job: Job, res: GenerationResult) -> dict[str, Any]:
    checks: dict[str, bool] = {}
    images = []
    for i, img in enumerate(res.images):
        data = deps.images.get(img.key)
        sidecar_key = (img.credentials or {}).get("sidecar_key")
        sidecar = deps.images.get(sidecar_key) if sidecar_key else None
        report = reader.read(data, img.media_type, sidecar)
        mine = {
            "sha256": _sha(data) == img.sha256,
            **_credential_checks(report, img, job.job_id, res.provider),
        }
        checks.update({f"{k}[{i}]" if len(res.images) > 1 else k: v for k, v in mine.items()})
        images.append(
            {
                "sha256": _sha(data),
                "c2pa_state": report.state,
                "manifest_label": report.manifest_label,
                "digital_source_type": report.digital_source_type,
                "software_agent": report.software_agent,
                "issuer": report.issuer,
                "failures": list(report.failures),
            }
        )
    return _link(checks, images=images)


def _arweave_link(deps: Deps, reader: Any, res: GenerationResult) -> dict[str, Any]:
    checks: dict[str, bool] = {}
    items = []
    archives = res.archive or []
    for i, (img, archived) in enumerate(zip(res.images, archives, strict=False)):
        tx_id = str(archived.get("id", ""))
        signature = str((archived.get("record") or {}).get("signature", ""))
        data, error = _read_archive(deps, tx_id)
        mine = {
            "id_is_hash_of_signature": bool(signature) and _id_of_signature(signature) == tx_id,
            "gateway_bytes_verify": data is not None,
            "gateway_bytes_are_the_signed_image": data is not None and _sha(data) == img.sha256,
        }
        if data is not None and img.credentials:
            report = reader.read(data, img.media_type)
            mine["c2pa_trusted"] = report.trusted and report.manifest_label == img.credentials.get(
                "manifest_label"
            )
        checks.update({f"{k}[{i}]" if len(archives) > 1 else k: v for k, v in mine.items()})
        items.append({"id": tx_id, "url": archived.get("url"), "error": error})
    checks["every_image_archived"] = len(archives) == len(res.images)
    return _link(checks, items=items)


def _metadata_link(deps: Deps, job: Job, res: GenerationResult) -> dict[str, Any]:
    md = res.metadata_archive or {}
    tx_id = str(md.get("id", ""))
    data, error = _read_archive(deps, tx_id)
    doc: dict[str, Any] = {}
    if data is not None:
        try:
            loaded = json.loads(data)
            doc = loaded if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            doc = {}
    first = (res.archive or [{}])[0]
    creds = (doc.get("content_credentials") or [{}])[0] if doc.get("content_credentials") else {}
    img = res.images[0]
    checks = {
        "gateway_bytes_verify": data is not None,
        "image_is_the_arweave_item": bool(doc) and doc.get("image") == first.get("uri"),
        "names_job": doc.get("job_id") == job.job_id,
        "image_sha256": creds.get("sha256") == img.sha256,
        "manifest": bool(creds.get("manifest_label"))
        and creds.get("manifest_label") == (img.credentials or {}).get("manifest_label"),
    }
    return _link(checks, id=tx_id, uri=md.get("uri"), url=md.get("url"), error=error)


def _token_link(deps: Deps, res: GenerationResult, named: str | None) -> dict[str, Any]:
    moment = res.moment or {}
    contract, token_id = str(moment.get("contractAddress", "")), int(moment.get("tokenId", 0))
    expected_uri = (res.metadata_archive or {}).get("uri")
    chain = wiring.chain_reader(deps.settings)
    facts: dict[str, Any] = {
        "chain_id": moment.get("chainId"),
        "contract": contract,
        "token_id": str(token_id),
        "tx": moment.get("hash"),
    }
    checks: dict[str, bool] = {}
    try:
        uri = chain.token_uri(contract, token_id)
        facts["uri"] = uri
        checks["uri_is_the_metadata"] = uri == expected_uri
        owner = chain.minted_to(str(moment.get("hash", "")), token_id)
        facts["owner"] = owner
        checks["owner_holds_it"] = bool(owner) and chain.balance_of(contract, owner, token_id) >= 1
    except Exception as exc:  # a chain that cannot answer is a red link, not a 500
        facts["error"] = str(getattr(exc, "message", exc))[:300]
        checks.setdefault("uri_is_the_metadata", False)
        checks.setdefault("owner_holds_it", False)
    if named is not None:
        checks["ref_is_this_moment"] = named.lower() == f"{facts['chain_id']}:{contract}:{token_id}".lower()
    return _link(checks, **facts)
