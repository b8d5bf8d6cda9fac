"""Content Credentials: the c2pa adapter (sign, read, trust) and the Sign step over the in-memory stores.

The adapter runs the real c2pa-python; identities come from ``imagemint_dev.c2pa_certs``
(a root CA and a signing leaf). A second identity stands in for a provider that signs
its own outputs (OpenAI does): its manifest must survive as our parent ingredient.
"""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image

from events import bearer, http_event, invoke, multipart, png
from imagemint import wiring
from imagemint.adapters.c2pa.signer import C2paContentSigner, C2paCredentialReader
from imagemint.domain import credentials
from imagemint.domain.models import GenerationRequest, GenerationResult, Job, StoredImage
from imagemint.domain.ports import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    ContentClaim,
    ProviderCall,
    ProviderImage,
    ProviderResult,
)
from imagemint_dev.c2pa_certs import make_identity


@pytest.fixture(scope="module")
def ours():
    return make_identity("imagemint test")


@pytest.fixture(scope="module")
def provider_ca():
    return make_identity("Provider stand-in")


def signer_of(identity, anchors=None):
    return C2paContentSigner(identity.chain_pem, identity.key_pem, trust_anchors_pem=anchors)


def image(fmt: str, size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (20, 120, 200)).save(buf, fmt)
    return buf.getvalue()


CLAIM = ContentClaim(job_id="0f0e0d0c-0000-4000-8000-000000000001", model="gpt-image-2", provider="openai")


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_a_signed_image_reads_trusted_with_our_root_and_says_a_trained_algorithm_made_it(
    ours, fmt, media_type
):
    source = image(fmt)
    signed = signer_of(ours).sign(source, media_type, CLAIM)
    assert signed.sidecar is None and signed.data != source and len(signed.data) > len(source)
    assert signed.manifest_label.startswith("urn:c2pa:") and len(signed.manifest_sha256) == 64
    report = C2paCredentialReader(ours.root_pem).read(signed.data, media_type)
    assert report.state == "Trusted", report.failures
    assert report.manifest_label == signed.manifest_label
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.software_agent == "openai/gpt-image-2" and report.job_id == CLAIM.job_id
    assert report.claim_generator == "imagemint 0.1.0" and report.issuer == "imagemint test"
    # The pixels are the provider's: the decoded image is unchanged.
    assert Image.open(io.BytesIO(signed.data)).tobytes() == Image.open(io.BytesIO(source)).tobytes()


def test_without_our_root_as_anchor_the_image_is_valid_but_not_trusted(ours, provider_ca):
    signed = signer_of(ours).sign(image("PNG"), "image/png", CLAIM)
    for reader in (C2paCredentialReader(None), C2paCredentialReader(provider_ca.root_pem)):
        report = reader.read(signed.data, "image/png")
        assert report.valid and not report.trusted and report.state == "Valid"


def test_a_flipped_byte_reads_invalid_and_an_unsigned_image_reads_absent(ours):
    signed = signer_of(ours).sign(image("PNG", 256), "image/png", CLAIM).data
    flipped = bytearray(signed)
    flipped[len(flipped) // 2] ^= 0x01
    report = C2paCredentialReader(ours.root_pem).read(bytes(flipped), "image/png")
    assert report.state == "Invalid" and not report.valid and report.failures
    assert C2paCredentialReader(ours.root_pem).read(image("PNG"), "image/png").state == "absent"


def test_a_providers_own_manifest_is_kept_as_our_parent_ingredient(ours, provider_ca):
    from_provider = signer_of(provider_ca).sign(image("PNG"), "image/png", CLAIM)
    ours_signed = signer_of(ours).sign(from_provider.data, "image/png", CLAIM)
    assert ours_signed.parent_label == from_provider.manifest_label
    both = C2paCredentialReader(ours.root_pem + provider_ca.root_pem).read(ours_signed.data, "image/png")
    assert both.state == "Trusted" and both.parent_label == from_provider.manifest_label
    assert both.manifest_label == ours_signed.manifest_label != from_provider.manifest_label


def test_a_self_signed_or_garbage_identity_is_refused(ours):
    from imagemint.errors import InternalError

    with pytest.raises(InternalError):
        C2paContentSigner(b"not pem", ours.key_pem)


# --------------------------------------------------------------------------- the Sign step


class SignedByProvider:
    """A provider whose outputs carry its own C2PA manifest (as OpenAI's do)."""

    name = "openai"

    def __init__(self, identity) -> None:
        self.signer = signer_of(identity)
        self.calls: list[ProviderCall] = []

    def generate(self, call: ProviderCall) -> ProviderResult:
        self.calls.append(call)
        data = self.signer.sign(image("PNG", 96), "image/png", CLAIM).data
        return ProviderResult(
            images=[ProviderImage(data, "image/png", 96, 96)] * call.n, model=call.provider_model
        )


@pytest.fixture
def signing(deps, ours):
    deps.settings = deps.settings.model_copy(update={"sign_mode": "c2pa"})
    wiring.override(content_signer=signer_of(ours))
    return C2paCredentialReader(ours.root_pem)


def test_every_image_a_dialect_returns_is_signed_and_the_job_records_the_signed_bytes(deps, account, signing):
    _, key = account
    body = {"model": "gpt-image-2", "prompt": "a koi", "n": 2, "size": "1024x1024"}
    reply = invoke(
        "openai_images", http_event("POST", "/v1/images/generations", headers=bearer(key), json_body=body)
    )
    assert reply.status == 200, reply.text
    (job,) = deps.jobs.jobs.values()
    for item, stored in zip(reply.json["data"], job.result["images"], strict=True):
        data = base64.b64decode(item["b64_json"])
        report = signing.read(data, "image/png")
        assert report.trusted and report.job_id == job.job_id
        assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
        assert stored["sha256"] == hashlib.sha256(data).hexdigest() and stored["bytes"] == len(data)
        assert stored["credentials"]["manifest_label"] == report.manifest_label
        assert stored["credentials"]["source_sha256"] != stored["sha256"]
        assert deps.images.get(stored["key"]) == data


def test_an_edit_is_signed_as_composite_and_a_provider_manifest_survives(deps, account, signing, provider_ca):
    _, key = account
    provider = SignedByProvider(provider_ca)
    wiring.register_provider("openai", provider)
    ctype, body = multipart(
        {"model": "gpt-image-2", "prompt": "make it night"}, [("image", "in.png", "image/png", png(64, 64))]
    )
    reply = invoke(
        "openai_images",
        http_event(
            "POST",
            "/v1/images/edits",
            headers={**bearer(key), "content-type": ctype},
            body=body,
            is_base64=True,
        ),
    )
    assert reply.status == 200, reply.text
    data = base64.b64decode(reply.json["data"][0]["b64_json"])
    report = signing.read(data, "image/png")
    assert report.trusted and report.digital_source_type == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert report.parent_label is not None and report.parent_label != report.manifest_label


def test_the_sign_step_run_again_after_a_crash_does_not_sign_twice(deps, signing):
    job_id = "0f0e0d0c-0000-4000-8000-0000000000aa"
    deps.jobs.create(Job(job_id=job_id, account_id="a", dialect="openai", model="gpt-image-2"))
    source = image("PNG")
    deps.images.put(f"images/{job_id}/0.png", source, "image/png", {"job-id": job_id})
    stored = StoredImage(
        key=f"images/{job_id}/0.png",
        media_type="image/png",
        width=64,
        height=64,
        bytes=len(source),
        sha256=hashlib.sha256(source).hexdigest(),
    )
    result = GenerationResult(
        job_id=job_id,
        images=[stored],
        model="gpt-image-2",
        requested_model="gpt-image-2",
        provider="openai",
        size="64x64",
    ).model_dump(exclude_none=True)
    request = GenerationRequest(prompt="x", model="gpt-image-2", dialect="openai", account_id="a")
    first = credentials.sign_images(deps, job_id, request, result)
    signed_once = deps.images.get(stored.key)
    again = credentials.sign_images(deps, job_id, request, result)  # same input: the killed run's
    assert deps.images.get(stored.key) == signed_once
    assert (
        again["images"][0]["sha256"]
        == first["images"][0]["sha256"]
        == hashlib.sha256(signed_once).hexdigest()
    )
    assert (
        again["images"][0]["credentials"]["manifest_label"]
        == first["images"][0]["credentials"]["manifest_label"]
    )
    assert deps.jobs.get(job_id).result["images"][0]["sha256"] == first["images"][0]["sha256"]


def test_sign_mode_off_leaves_images_alone(deps, account):
    _, key = account
    body = {"model": "gpt-image-2", "prompt": "a koi"}
    reply = invoke(
        "openai_images", http_event("POST", "/v1/images/generations", headers=bearer(key), json_body=body)
    )
    data = base64.b64decode(reply.json["data"][0]["b64_json"])
    assert C2paCredentialReader(None).read(data, "image/png").state == "absent"
    (job,) = deps.jobs.jobs.values()
    assert "credentials" not in job.result["images"][0]


@pytest.mark.parametrize("carries_a_manifest", [False, True], ids=["plain", "signed-elsewhere"])
def test_an_upload_is_signed_as_opened_claiming_no_source_and_keeping_its_own_manifest(
    deps, signing, ours, provider_ca, carries_a_manifest
):
    """An image dropped into ingest/: we sign that we took it in (``c2pa.opened``, the upload as our
    parent ingredient), never that a model made it; a manifest it already carries stays inside ours."""
    from imagemint.domain import verify
    from imagemint.domain.ports import CREATED, OPENED

    job_id = "0f0e0d0c-0000-4000-8000-0000000000bb"
    deps.jobs.create(Job(job_id=job_id, account_id="a", dialect="ingest", model="upload"))
    source, theirs = image("JPEG"), None
    if carries_a_manifest:
        elsewhere = signer_of(provider_ca).sign(source, "image/jpeg", CLAIM)
        source, theirs = elsewhere.data, elsewhere.manifest_label
    key = f"images/{job_id}/0.jpg"
    deps.images.put(key, source, "image/jpeg", {"job-id": job_id})
    stored = StoredImage(
        key=key,
        media_type="image/jpeg",
        width=64,
        height=64,
        bytes=len(source),
        sha256=hashlib.sha256(source).hexdigest(),
    )
    result = GenerationResult(
        job_id=job_id,
        images=[stored],
        model="upload",
        requested_model="upload",
        provider="upload",
        size="64x64",
    ).model_dump(exclude_none=True)
    request = GenerationRequest(prompt="upload", model="upload", dialect="ingest", account_id="a")
    out = credentials.sign_images(deps, job_id, request, result)
    data = deps.images.get(key)
    assert data != source and out["images"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    report = signing.read(data, "image/jpeg")
    assert report.trusted and report.action == OPENED and report.job_id == job_id
    assert report.digital_source_type is None  # how it was made is not ours to say
    # The upload is our parent ingredient (C2PA refuses an opened action without one): a manifest
    # it carried is read through it, so it is kept, never stripped.
    assert report.parent_label == theirs
    assert verify.declares_its_source(report, "upload")
    assert not verify.declares_its_source(report, "openai")  # a made image needs a created claim
    made = signing.read(signer_of(ours).sign(image("PNG"), "image/png", CLAIM).data, "image/png")
    assert made.action == CREATED and not verify.declares_its_source(made, "upload")
