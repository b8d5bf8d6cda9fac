"""The Generate step for an image dropped into ``ingest/``: format and size read from the header alone.

The images are written by Pillow here (the test's side); the step itself reads
them without an image library, as the core layer ships none.
"""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from imagemint.domain import steps
from imagemint.domain.models import GenerationRequest, Job
from imagemint.errors import InputRefused


def encoded(fmt: str, size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if fmt in ("PNG", "WEBP") and options.pop("alpha", False) else "RGB"
    Image.new(mode, size, (30, 120, 200)).save(out, format=fmt, **options)
    return out.getvalue()


def ingest(deps, account, data: bytes, name: str = "drop.png"):
    acc, _ = account
    key = f"ingest/{acc.account_id}/{name}"
    deps.images.put(key, data, "application/octet-stream")
    request = GenerationRequest(
        prompt=name,
        model="upload",
        dialect="ingest",
        account_id=acc.account_id,
        extra={"source_key": key},
    )
    job_id = str(uuid.uuid4())
    deps.jobs.create(Job(job_id=job_id, account_id=acc.account_id, dialect="ingest", model="upload"))
    return job_id, steps.generate(deps, job_id, request)


@pytest.mark.parametrize(
    ("fmt", "options", "media_type", "ext"),
    [
        ("PNG", {}, "image/png", "png"),
        ("PNG", {"alpha": True}, "image/png", "png"),
        ("JPEG", {"quality": 80}, "image/jpeg", "jpeg"),
        ("JPEG", {"progressive": True, "exif": b"Exif\x00\x00" + b"\x00" * 64}, "image/jpeg", "jpeg"),
        ("WEBP", {"lossless": False}, "image/webp", "webp"),
        ("WEBP", {"lossless": True}, "image/webp", "webp"),
        ("WEBP", {"alpha": True, "lossless": False}, "image/webp", "webp"),
    ],
    ids=["png", "png-alpha", "jpeg", "jpeg-progressive-exif", "webp-lossy", "webp-lossless", "webp-alpha"],
)
def test_an_ingested_image_is_kept_with_its_format_and_size(deps, account, fmt, options, media_type, ext):
    data = encoded(fmt, (37, 23), **options)
    job_id, result = ingest(deps, account, data)
    (image,) = result.images
    assert (image.media_type, image.width, image.height, image.bytes) == (media_type, 37, 23, len(data))
    assert image.key == f"images/{job_id}/0.{ext}" and deps.images.get(image.key) == data
    assert result.size == "37x23" and result.provider == "upload"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello", "is not a PNG, JPEG or WebP image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "is not a PNG, JPEG or WebP image"),  # no IHDR
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "is not a PNG, JPEG or WebP image"),  # no frame header
        (b"RIFF\x00\x00\x00\x00WEBPJUNK" + b"\x00" * 20, "is not a PNG, JPEG or WebP image"),
        (encoded("GIF", (5, 5)), "is a gif image; PNG, JPEG or WebP expected"),
    ],
    ids=["text", "png-without-ihdr", "jpeg-without-sof", "webp-unknown-chunk", "gif"],
)
def test_an_ingested_file_that_is_not_a_usable_image_is_refused(deps, account, data, message):
    with pytest.raises(InputRefused, match=message) as refused:
        ingest(deps, account, data)
    assert refused.value.param == "object"
