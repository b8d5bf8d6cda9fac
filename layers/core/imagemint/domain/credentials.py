"""The Sign step: a C2PA manifest signed into every image we keep, before anything archives or delivers it.

The state machine runs it right after Generate (``Generate -> Sign -> WantsArchive``).
For each stored image it reads the bytes, has the :class:`~imagemint.domain.ports.ContentSigner`
add our manifest (``c2pa.created``, IPTC ``trainedAlgorithmicMedia``, or
``compositeWithTrainedAlgorithmicMedia`` when reference images or an edit went
in; the model and provider as software agent; the job id), writes the signed
bytes over the object (a new S3 object at the same key) and updates the job's
image record (``sha256``, ``bytes``, ``credentials``). Archive, metadata, mint
and every dialect's answer then see only signed bytes.

Re-runs: the object's metadata names the sha256 of the bytes it was signed from
(``c2pa-source-sha256``) and the manifest; a step run again after a crash finds
the image signed and records it instead of signing it twice. A format c2pa
cannot embed into keeps its bytes and gets a sidecar manifest (``<key>.c2pa``).
"""

from __future__ import annotations

from typing import Any

from imagemint import wiring
from imagemint.domain.models import GenerationRequest, GenerationResult, StoredImage
from imagemint.domain.ports import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    CREATED,
    OPENED,
    TRAINED_ALGORITHMIC_MEDIA,
    ContentClaim,
    ContentSigner,
    Deps,
)
from imagemint.domain.service import sha256_hex
from imagemint.observability import logger

SIDECAR_MEDIA_TYPE = "application/c2pa"
#: The provider of an image dropped into ingest/ (imagemint.domain.steps): we did not make it, so it
#: gets a ``c2pa.opened`` manifest (the upload as our parent ingredient, its own manifest kept inside)
#: and no digital source type: how it was made is not ours to say.
UPLOAD = "upload"


def source_type(request: GenerationRequest, provider: str = "") -> str | None:
    """The IPTC digital source type of what a request made (None for an upload we only took in)."""
    if provider == UPLOAD:
        return None
    if request.references or request.mask:
        return COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    return TRAINED_ALGORITHMIC_MEDIA


def sign_images(
    deps: Deps, job_id: str, request: GenerationRequest, result: dict[str, Any]
) -> dict[str, Any]:
    """Sign every image of ``result`` in place; the updated result (also written to the job)."""
    signer = wiring.content_signer(deps.settings)
    res = GenerationResult.model_validate(result)
    if signer is None:  # sign_mode off
        return res.model_dump(exclude_none=True)
    kind = source_type(request, res.provider)
    res.images = [_sign_one(deps, signer, job_id, i, img, res, kind) for i, img in enumerate(res.images)]
    out = res.model_dump(exclude_none=True)
    deps.jobs.update(job_id, result=out)
    logger.info("signed", extra={"job_id": job_id, "images": len(res.images)})
    return out


def _sign_one(
    deps: Deps,
    signer: ContentSigner,
    job_id: str,
    index: int,
    img: StoredImage,
    res: GenerationResult,
    kind: str | None,
) -> StoredImage:
    if img.credentials:
        return img  # this record was made by a run that signed it
    data = deps.images.get(img.key)
    meta = (deps.images.head(img.key) or {}).get("metadata") or {}
    if meta.get("c2pa-source-sha256") == img.sha256 and meta.get("c2pa-manifest"):
        credentials = {  # a killed run signed it and did not record it
            "manifest_label": meta["c2pa-manifest"],
            "manifest_sha256": meta.get("c2pa-manifest-sha256", ""),
            "digital_source_type": kind,
            "source_sha256": img.sha256,
        }
        if meta.get("c2pa-sidecar"):
            credentials["sidecar_key"] = meta["c2pa-sidecar"]
        return img.model_copy(
            update={"sha256": sha256_hex(data), "bytes": len(data), "credentials": credentials}
        )
    claim = ContentClaim(
        job_id=job_id,
        model=res.model,
        provider=res.provider,
        digital_source_type=kind,
        index=index,
        action=OPENED if res.provider == UPLOAD else CREATED,
    )
    signed = signer.sign(data, img.media_type, claim)
    credentials = {
        "manifest_label": signed.manifest_label,
        "manifest_sha256": signed.manifest_sha256,
        "digital_source_type": kind,
        "source_sha256": img.sha256,
    }
    object_meta = {
        "job-id": job_id,
        "c2pa-source-sha256": img.sha256,
        "c2pa-manifest": signed.manifest_label,
        "c2pa-manifest-sha256": signed.manifest_sha256,
    }
    if signed.parent_label:
        credentials["parent_manifest"] = signed.parent_label
    if signed.sidecar is not None:
        sidecar_key = f"{img.key}.c2pa"
        deps.images.put(sidecar_key, signed.sidecar, SIDECAR_MEDIA_TYPE, {"job-id": job_id})
        credentials["sidecar_key"] = object_meta["c2pa-sidecar"] = sidecar_key
    deps.images.put(img.key, signed.data, img.media_type, object_meta)
    return img.model_copy(
        update={"sha256": sha256_hex(signed.data), "bytes": len(signed.data), "credentials": credentials}
    )
