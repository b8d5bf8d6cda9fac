"""The :class:`~imagemint.domain.ports.ContentSigner` and :class:`~imagemint.domain.ports.CredentialReader`
on c2pa-python.

Signing. One manifest per image: a ``c2pa.actions.v2`` assertion with one
``c2pa.created`` action (the IPTC digital source type, the provider and model as
``softwareAgent``, the job id in its parameters), ``imagemint`` and its version
as the claim generator, signed ES256 with our leaf certificate (its chain up to
our root is embedded). No thumbnail: it would add ~30 KB and ~150 ms per image
for nothing a verifier needs. c2pa-python only inserts its manifest store (a PNG
chunk, a JPEG APP11 segment, a WebP chunk): pixels are never re-encoded. When
the image already carries a manifest (OpenAI signs its outputs) the original
bytes are added as the ``parentOf`` ingredient, so their manifest lives on
inside ours (validated as an ingredient), never stripped. Formats c2pa cannot
embed into get a sidecar manifest store and unchanged bytes.

Reading. Validation with the configured trust anchors (PEM): ``Trusted`` when
the signing chain ends at one of them, ``Valid`` when the signature and hashes
hold but the chain is unknown, ``Invalid`` on any failure (a changed byte is
``assertion.hashedURI.mismatch`` / ``assertion.dataHash.mismatch``).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from typing import Any

import c2pa
from imagemint import APP_NAME, __version__
from imagemint.domain.ports import CREATED, OPENED, ContentClaim, CredentialReport, SignedContent
from imagemint.errors import InternalError

JOB_PARAM = "org.imagemint.job_id"
PROVIDER_PARAM = "org.imagemint.provider"
INDEX_PARAM = "org.imagemint.image_index"
UNTRUSTED = "signingCredential.untrusted"  # a valid signature whose chain ends at no trust anchor
_NO_THUMBNAIL = {"builder": {"thumbnail": {"enabled": False}}}

_types_lock = threading.Lock()
_embeddable: frozenset[str] | None = None


def embeddable_types() -> frozenset[str]:
    global _embeddable
    with _types_lock:
        if _embeddable is None:
            _embeddable = frozenset(c2pa.Builder.get_supported_mime_types())
        return _embeddable


UPLOAD_INGREDIENT = "upload"  # the label an OPENED action names its parent ingredient by


def _manifest(claim: ContentClaim, media_type: str) -> dict[str, Any]:
    action: dict[str, Any] = {
        "action": claim.action,
        "softwareAgent": {"name": f"{claim.provider}/{claim.model}"},
        "parameters": {JOB_PARAM: claim.job_id, PROVIDER_PARAM: claim.provider, INDEX_PARAM: claim.index},
    }
    if claim.action == OPENED:  # C2PA: an opened action names its (parentOf) ingredient
        action["parameters"]["ingredientIds"] = [UPLOAD_INGREDIENT]
    if claim.digital_source_type:
        action["digitalSourceType"] = claim.digital_source_type
    return {
        "claim_generator_info": [{"name": APP_NAME, "version": __version__}],
        "title": f"{claim.job_id}-{claim.index}",
        "format": media_type,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [action]}}],
    }


class C2paContentSigner:
    """Signs with one certificate chain (leaf first, PEM) and its private key (PEM)."""

    def __init__(self, chain_pem: bytes, key_pem: bytes, *, trust_anchors_pem: bytes | None = None) -> None:
        if b"BEGIN CERTIFICATE" not in chain_pem or b"PRIVATE KEY" not in key_pem:
            raise InternalError("The Content Credentials certificate chain or key is not PEM")
        self._chain = chain_pem
        self._key = key_pem
        self._reader = C2paCredentialReader(trust_anchors_pem or root_of(chain_pem))

    def _signer(self) -> Any:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self._chain, self._key, None)
        return c2pa.Signer.from_info(info)

    def sign(self, data: bytes, media_type: str, claim: ContentClaim) -> SignedContent:
        context = c2pa.Context.from_dict(_NO_THUMBNAIL)
        builder = c2pa.Builder(_manifest(claim, media_type), context=context)
        embed = media_type in embeddable_types()
        parent_label = None
        existing = _try_read(data, media_type) if embed else None
        if existing is not None:
            parent_label = existing.manifest_label
        if claim.action == OPENED:  # the upload itself is our parent (its own manifest, if any, inside)
            builder.add_ingredient(
                {"title": "upload", "relationship": "parentOf", "label": UPLOAD_INGREDIENT},
                media_type,
                io.BytesIO(data),
            )
        elif existing is not None:
            builder.add_ingredient(
                {"title": "provider output", "relationship": "parentOf"}, media_type, io.BytesIO(data)
            )
        if not embed:
            builder.set_no_embed()
        out = io.BytesIO()
        try:
            with self._signer() as signer:
                manifest = builder.sign(signer, media_type if embed else "image/png", io.BytesIO(data), out)
        except c2pa.C2paError as exc:
            raise InternalError(f"Content Credentials signing failed: {exc}") from None
        finally:
            builder.close()
        signed = out.getvalue() if embed else data
        sidecar = None if embed else bytes(manifest)
        report = self._reader.read(signed, media_type, sidecar)
        if not report.valid or not report.manifest_label:
            raise InternalError(f"Our own Content Credentials do not validate: {', '.join(report.failures)}")
        return SignedContent(
            data=signed,
            media_type=media_type,
            manifest_label=report.manifest_label,
            manifest_sha256=hashlib.sha256(bytes(manifest)).hexdigest(),
            sidecar=sidecar,
            parent_label=parent_label,
        )


def root_of(chain_pem: bytes) -> bytes:
    """The last certificate of a PEM chain (leaf first): our own trust anchor."""
    marker = b"-----BEGIN CERTIFICATE-----"
    parts = chain_pem.split(marker)
    return marker + parts[-1] if len(parts) > 1 else b""


def _try_read(data: bytes, media_type: str) -> CredentialReport | None:
    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data))
    except c2pa.C2paError:
        return None
    if reader is None:
        return None
    with reader:
        return _report(reader)


class C2paCredentialReader:
    """Validates against ``trust_anchors_pem`` (one or more PEM certificates; empty: nothing is trusted)."""

    def __init__(self, trust_anchors_pem: bytes | None = None) -> None:
        self._anchors = (trust_anchors_pem or b"").decode("ascii", "replace").strip()

    def _context(self) -> Any:
        if not self._anchors:
            return c2pa.Context.from_dict({"verify": {"verify_trust": True}})
        return c2pa.Context.from_dict(
            {"trust": {"trust_anchors": self._anchors + "\n"}, "verify": {"verify_trust": True}}
        )

    def read(self, data: bytes, media_type: str, sidecar: bytes | None = None) -> CredentialReport:
        try:
            reader = c2pa.Reader(media_type, io.BytesIO(data), sidecar, context=self._context())
        except c2pa.C2paError.ManifestNotFound:
            return CredentialReport(state="absent")
        except c2pa.C2paError as exc:
            return CredentialReport(state="Invalid", failures=(str(exc).splitlines()[0][:300],))
        with reader:
            return _report(reader)


def _report(reader: Any) -> CredentialReport:
    store = json.loads(reader.json())
    label = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(label) or {}
    state = reader.get_validation_state() or "Invalid"
    results = reader.get_validation_results() or {}
    failures = tuple(str(f.get("code")) for f in ((results.get("activeManifest") or {}).get("failure") or []))
    if set(failures) - {UNTRUSTED} and state != "Invalid":
        state = "Invalid"
    action: dict[str, Any] = {}
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for a in (assertion.get("data") or {}).get("actions") or []:
                if a.get("action") in (CREATED, OPENED):
                    action = a
                    break
    params = action.get("parameters") or {}
    agent = action.get("softwareAgent")
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    parent = next(
        (
            i.get("active_manifest")
            for i in manifest.get("ingredients") or []
            if i.get("relationship") == "parentOf"
        ),
        None,
    )
    return CredentialReport(
        state=state,
        manifest_label=label,
        digital_source_type=action.get("digitalSourceType"),
        software_agent=agent.get("name") if isinstance(agent, dict) else agent,
        claim_generator=" ".join(str(generator.get(k)) for k in ("name", "version") if generator.get(k))
        or None,
        job_id=params.get(JOB_PARAM),
        issuer=(manifest.get("signature_info") or {}).get("issuer"),
        parent_label=parent,
        failures=failures,
        action=action.get("action"),
    )
