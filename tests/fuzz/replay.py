"""Our own fuzz corpus (``tests/fuzz/corpus/*.json``): hostile requests, each a file, replayed in CI.

Replayed against the real handlers (``tests/unit/test_hostile_input.py``, through the
event builder in ``tests/events.py``) and against ``imagemint serve`` over HTTP
(``tests/integration/test_hostile_input_local.py``). Every answer must be below 500,
carry ``X-Content-Type-Options: nosniff``, be JSON in the documented shape of the
dialect the path belongs to (or API Gateway's ``{"message"}`` for what the HTTP front
answers by itself), carry no raw ``<`` or ``>`` and stay small.

A case file::

    {
      "about": "what the case is and which finding it comes from",
      "method": "POST",
      "path": "/v1/images/generations",
      "query": {"prompt": "x"},                      optional
      "headers": {"content-type": "application/json", "authorization": "Bearer {key}"},
      "body": "text" | "body_base64": "..." | "generate": {"kind": ..., ...},   optional
      "status": 400 | [400, 413],                     what must come back
      "shape": "openai",                              optional: else from the path (:func:`shape_of`)
      "front_only": true                              optional: only an HTTP front can send it
    }

``{key}`` and ``{account_id}`` in headers, query and text bodies are the test account's.
Large bodies are not stored: ``generate`` builds them (:data:`GENERATORS`); a long path or
header value is given as ``{"unit": "a", "times": 70000, "prefix": "/v1/"}``. Findings of
other fuzzers (schemathesis) go here as new files in the same form.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_ERROR_BYTES = 4096  # an error answer quotes at most a bounded part of the request


@dataclass
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: tuple[int, ...]
    shape: str
    query: dict[str, str] = field(default_factory=dict)
    front_only: bool = False


# --------------------------------------------------------------------------- generated bodies


def bomb_png(width: int = 9400, height: int = 9400) -> bytes:
    """A valid 1-bit grayscale PNG declaring ``width`` x ``height``, all black: ~15 KB for 88 MP."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def multipart_body(
    fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]], boundary: str
) -> bytes:
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, filename, ctype, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _nested(spec: dict[str, Any], headers: dict[str, str]) -> bytes:
    depth = int(spec["depth"])
    opening, closing = spec.get("open", "["), spec.get("close", "]")
    middle = spec.get("middle", "")
    text = spec.get("prefix", "") + opening * depth + middle + closing * depth + spec.get("suffix", "")
    return text.encode()


def _repeat(spec: dict[str, Any], headers: dict[str, str]) -> bytes:
    text = spec.get("prefix", "") + spec["unit"] * int(spec["times"]) + spec.get("suffix", "")
    return text.encode("utf-8", "surrogatepass")


def _multipart_fields(spec: dict[str, Any], headers: dict[str, str]) -> bytes:
    boundary = "b"
    headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    count = int(spec["count"])
    fields = [("prompt", "x")] + [(f"f{i}", "v") for i in range(count)]
    return multipart_body(fields, [], boundary)


def _multipart_images(spec: dict[str, Any], headers: dict[str, str]) -> bytes:
    boundary = "b"
    headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    image = bomb_png(*spec["size"]) if spec.get("size") else bomb_png(1, 1)
    files = [("image[]", f"{i}.png", "image/png", image) for i in range(int(spec["count"]))]
    return multipart_body([("prompt", "x")], files, boundary)


def _json_images(spec: dict[str, Any], headers: dict[str, str]) -> bytes:
    encoded = base64.b64encode(bomb_png(*spec["size"])).decode("ascii")
    item = ("data:image/png;base64," if spec.get("data_uri", True) else "") + encoded
    body = {"model": spec.get("model", "gpt-image-2"), "prompt": "x", "image": [item] * int(spec["count"])}
    return json.dumps(body).encode()


GENERATORS: dict[str, Callable[[dict[str, Any], dict[str, str]], bytes]] = {
    "nested": _nested,
    "repeat": _repeat,
    "multipart_fields": _multipart_fields,
    "multipart_images": _multipart_images,
    "json_images": _json_images,
}


# --------------------------------------------------------------------------- loading


def shape_of(path: str) -> str:
    """The error shape a path's answers have: the dialect's, or API Gateway's (``gateway``)."""
    if path == "/api/image/generate":
        return "legacy"
    if path.startswith("/api/content/"):
        return "content"
    if path.startswith(("/v1/", "/api/images/")):
        return "openai"
    if path.startswith("/action/"):
        return "agentai"
    if path.startswith(("/api/jobs/", "/api/files/")):
        return "plain"
    return "gateway"


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _text(value: Any, values: dict[str, str]) -> str:
    if isinstance(value, dict):  # a long value, built
        return value.get("prefix", "") + value["unit"] * int(value["times"])
    return _fill(str(value), values)


def load(path: Path, *, key: str, account_id: str) -> Case:
    spec = json.loads(path.read_text(encoding="utf-8"))
    values = {"key": key, "account_id": account_id}
    headers = {str(k).lower(): _text(v, values) for k, v in (spec.get("headers") or {}).items()}
    if "generate" in spec:
        gen = dict(spec["generate"])
        body = GENERATORS[gen.pop("kind")](gen, headers)
    elif "body_base64" in spec:
        body = base64.b64decode(spec["body_base64"])
    else:
        body = _fill(spec.get("body", ""), values).encode("utf-8", "surrogatepass")
    status = spec["status"]
    return Case(
        name=path.stem,
        method=spec["method"],
        path=_text(spec["path"], values),
        headers=headers,
        body=body,
        status=tuple(status) if isinstance(status, list) else (int(status),),
        shape=spec.get("shape") or shape_of(_text(spec["path"], values)),
        query={k: _fill(str(v), values) for k, v in (spec.get("query") or {}).items()},
        front_only=bool(spec.get("front_only")),
    )


def cases() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


# --------------------------------------------------------------------------- the answer


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


# Documented extras of an error body: a 402's credits, a job that keeps running past a deadline.
_EXTRA = ("required", "available", "job_id", "url")

SHAPES: dict[str, Callable[[Any], bool]] = {
    "legacy": lambda b: isinstance(b.get("error"), str) and set(b) <= {"error", *_EXTRA},
    "content": lambda b: (
        isinstance(b.get("error"), str)
        and _text_or_none(b.get("field"))
        and set(b) <= {"error", "field", *_EXTRA}
    ),
    "openai": lambda b: (
        set(b) == {"error"}
        and isinstance(b["error"], dict)
        and isinstance(b["error"].get("message"), str)
        and isinstance(b["error"].get("type"), str)
        and {"message", "type", "param", "code"} <= set(b["error"])
        and _text_or_none(b["error"]["param"])
        and _text_or_none(b["error"]["code"])
    ),
    "agentai": lambda b: (
        isinstance(b.get("status"), int)
        and isinstance(b.get("error"), str)
        and _text_or_none(b.get("param"))
        and set(b) <= {"status", "error", "param", *_EXTRA}
    ),
    "plain": lambda b: isinstance(b.get("error"), str) and set(b) == {"error"},
    "gateway": lambda b: isinstance(b.get("message"), str) and set(b) == {"message"},
}


def problems(case: Case, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    """What is wrong with an answer to ``case`` (empty when it is right)."""
    found: list[str] = []
    headers = {k.lower(): v for k, v in headers.items()}
    if status >= 500 and status not in case.status:  # 501 is what the front answers TRACE
        found.append(f"server error {status}")
    if status not in case.status:
        found.append(f"status {status}, expected {'/'.join(map(str, case.status))}")
    if headers.get("x-content-type-options", "").lower() != "nosniff":
        found.append("no X-Content-Type-Options: nosniff")
    if not headers.get("content-type", "").startswith("application/json"):
        found.append(f"content type {headers.get('content-type')!r}")
    if status >= 400 and len(body) > MAX_ERROR_BYTES:
        found.append(f"error body of {len(body)} bytes")
    if b"<" in body or b">" in body:
        found.append("raw markup in the answer")
    try:
        data = json.loads(body)
    except ValueError:
        return [*found, f"not JSON: {body[:80]!r}"]
    if status >= 400 and not (isinstance(data, dict) and SHAPES[case.shape](data)):
        found.append(f"not the {case.shape} error shape: {body[:200]!r}")
    return found
