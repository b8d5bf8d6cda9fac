"""A small multipart/form-data reader (what the OpenAI SDKs send to ``/v1/images/edits``), in linear time.

The body is walked once with ``bytes.find``: each part's header block is searched
only within :data:`MAX_HEADER_BYTES`, each delimiter from where the last one
ended, so a hostile body (tens of thousands of tiny fields, endless headers) is
refused after reading at most :data:`MAX_PARTS` parts, never parsed whole. Part
data is sliced, not decoded: callers count and check parts before decoding any
image. ``Content-Transfer-Encoding`` (deprecated for form data, RFC 7578) is
honoured for ``base64`` and otherwise must be an identity encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from imagemint.errors import InvalidRequest

MAX_PARTS = 64  # 16 images, a mask and every text field OpenAI's edit takes fit well within this
MAX_HEADER_BYTES = 4096  # one part's header block
MAX_HEADERS = 16  # header lines in one part
MAX_BOUNDARY = 70  # RFC 2046

_PARAM = re.compile(r';\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None
    content_type: str | None

    @property
    def is_file(self) -> bool:
        """Sent as a file (a filename or a content type), not as a text field."""
        return self.filename is not None or self.content_type is not None


def _params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="x"; filename="y"`` -> ("form-data", {"name": "x", "filename": "y"})."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    return main.strip().lower(), params


def _boundary(content_type_header: str) -> bytes:
    _, params = _params(content_type_header)
    boundary = params.get("boundary", "")
    if not boundary:
        raise InvalidRequest("multipart body without a boundary", param="Content-Type")
    if len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise InvalidRequest(
            f"multipart boundary must be 1 to {MAX_BOUNDARY} ASCII characters", param="Content-Type"
        )
    return boundary.encode("ascii")


def _filename(params: dict[str, str]) -> str | None:
    star = params.get("filename*")
    if star and "''" in star:  # RFC 5987: charset'lang'percent-encoded
        from urllib.parse import unquote

        charset, _, encoded = star.partition("'")
        try:
            return unquote(encoded.partition("'")[2], encoding=charset or "utf-8", errors="replace")
        except LookupError:
            return unquote(encoded.partition("'")[2], errors="replace")
    return params.get("filename")


def _part(header_block: bytes, data: bytes) -> Part | None:
    lines = header_block.split(b"\r\n") if header_block else []
    if len(lines) > MAX_HEADERS:
        raise InvalidRequest(f"A multipart part has more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise InvalidRequest("Malformed multipart part header")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    kind, disposition = _params(headers.get("content-disposition", ""))
    if kind != "form-data":
        return None  # not a form field (RFC 7578 parts are all form-data): ignored
    name = disposition.get("name")
    if not name:
        raise InvalidRequest("multipart part without a name")
    encoding = headers.get("content-transfer-encoding", "").strip().lower()
    if encoding == "base64":
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("A base64 multipart part is not valid base64") from None
    elif encoding not in ("", "binary", "8bit", "7bit"):
        raise InvalidRequest("multipart parts must not use a Content-Transfer-Encoding other than base64")
    ctype = headers.get("content-type")
    ctype = ctype.split(";", 1)[0].strip().lower() if ctype else None
    return Part(name, data, _filename(disposition), ctype or None)


def parse_multipart(content_type_header: str, body: bytes, *, max_parts: int = MAX_PARTS) -> list[Part]:
    """The form's parts in order. Refuses (400) more than ``max_parts`` parts, oversized header blocks,
    a missing boundary or closing delimiter, as soon as it meets them."""
    boundary = _boundary(content_type_header)
    dash = b"--" + boundary
    delimiter = b"\r\n" + dash
    if body.startswith(dash):
        pos = len(dash)
    else:  # a preamble before the first delimiter is allowed (and ignored)
        first = body.find(delimiter)
        if first < 0:
            raise InvalidRequest("Malformed multipart body (no boundary found)")
        pos = first + len(delimiter)
    parts: list[Part] = []
    seen = 0
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter; an epilogue after it is ignored
            break
        eol = body.find(b"\r\n", pos, pos + 256)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise InvalidRequest("Malformed multipart body (bad delimiter line)")
        seen += 1
        if seen > max_parts:
            raise InvalidRequest(f"A multipart body may hold at most {max_parts} parts")
        start = eol + 2
        if body.startswith(b"\r\n", start):  # no headers at all
            head_end, data_start = start, start + 2
        else:
            head_end = body.find(b"\r\n\r\n", start, start + MAX_HEADER_BYTES + 4)
            if head_end < 0:
                raise InvalidRequest(
                    f"A multipart part's headers are missing or longer than {MAX_HEADER_BYTES} bytes"
                )
            data_start = head_end + 4
        end = body.find(delimiter, data_start)
        if end < 0:
            raise InvalidRequest("Malformed multipart body (no closing boundary)")
        part = _part(body[start:head_end], body[data_start:end])
        if part is not None:
            parts.append(part)
        pos = end + len(delimiter)
    return parts
