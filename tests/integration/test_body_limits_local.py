"""The documented body limit is the real one: the largest accepted edit, one byte over, and past Lambda.

HTTP API hands a multipart body to Lambda base64-encoded inside the event, and Lambda refuses an event
over 6,291,456 bytes; the local runtime's front refuses it the same way (413 in API Gateway's shape,
the function never runs). ``max_body_bytes`` (4,706,304) is what fits with room for the largest
headers HTTP API passes: a body of exactly that size is generated from, one byte more is the dialect's
own 413, and a body whose event would not fit in Lambda never reaches the function.
"""

from __future__ import annotations

import io
import json
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imagemint.settings import LAMBDA_MAX_REQUEST, MAX_BODY_BYTES, Settings
from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = "imagemint-limit-test"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("limits"), port=0)
    yield rt
    rt.stop()


def png_padded(extra: int) -> bytes:
    """A valid 64x64 PNG carrying ``extra`` bytes in a private ancillary chunk (readers skip it)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 90, 160)).save(buf, "PNG")
    data = buf.getvalue()
    pad = b"\x00" * extra
    chunk = struct.pack(">I", len(pad)) + b"prVt" + pad + struct.pack(">I", zlib.crc32(b"prVt" + pad))
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


def multipart(total: int) -> bytes:
    """A /v1/images/edits body of exactly ``total`` bytes."""

    def build(image: bytes) -> bytes:
        out = b""
        for name, value in (("model", b"gpt-image-2"), ("prompt", b"make it brighter")):
            out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value + b"\r\n"
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        return out + image + f"\r\n--{BOUNDARY}--\r\n".encode()

    base = len(build(png_padded(0)))
    body = build(png_padded(total - base))  # base has the padding chunk, empty
    assert len(body) == total
    return body


def post(rt, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{rt.base_url}/v1/images/edits",
        data=body,
        headers={
            "Authorization": f"Bearer {rt.account['api_key']}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - our own 127.0.0.1 runtime
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_default_limit_is_what_lambda_carries():
    assert Settings.model_fields["max_body_bytes"].default == MAX_BODY_BYTES == 4_706_304
    # base64 of the largest body plus 16 KiB (HTTP API's 10 KiB of request line and headers, and the
    # rest of the event) is Lambda's request limit.
    assert 4 * -(-MAX_BODY_BYTES // 3) + 16 * 1024 <= LAMBDA_MAX_REQUEST


def test_the_largest_accepted_edit_runs_and_one_byte_more_is_the_dialects_413(runtime):
    status, body = post(runtime, multipart(MAX_BODY_BYTES))
    assert status == 200, body
    assert len(body["data"]) == 1

    status, body = post(runtime, multipart(MAX_BODY_BYTES + 1))
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    assert str(MAX_BODY_BYTES) in body["error"]["message"]


def test_a_body_lambda_cannot_carry_never_reaches_the_function(runtime):
    over = (LAMBDA_MAX_REQUEST * 3) // 4 + 1024  # its base64 alone is over Lambda's limit
    status, body = post(runtime, multipart(over))
    assert (status, body) == (413, {"message": "Request Entity Too Large"})
