"""The one builder of API Gateway HTTP API (payload v2) events, and the way tests call handlers.

Every test that needs an event builds it here (``http_event``) or loads a
sample from ``events/`` at the repository root (``load_event``), which goes
through the same builder; the samples are what ``sam local invoke -e`` takes.
Samples hold placeholders (``im_sk_example``, a zero account id, a fixed job
id) that ``load_event`` replaces with the test's own values.

Handlers are imported from ``functions/<name>/app.py`` by file path
(``load_function``) and called through their real ``lambda_handler``
(``invoke``), exactly as Lambda calls them.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"
FUNCTIONS_DIR = ROOT / "functions"

PLACEHOLDER_KEY = "im_sk_example"
PLACEHOLDER_ACCOUNT_ID = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER_JOB_ID = "11111111-1111-4111-8111-111111111111"

API_ID = "abcdef1234"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
REQUEST_TIME = "21/Nov/2026:09:00:00 +0000"
REQUEST_EPOCH_MS = 1795338000000

_MISSING: Any = object()


# --------------------------------------------------------------------------- events


def http_event(
    method: str = "GET",
    path: str = "/",
    *,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | None = None,
    json_body: Any = _MISSING,
    body: str | bytes | None = None,
    is_base64: bool = False,
    path_params: dict[str, str] | None = None,
    route_key: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event as Lambda receives it.

    ``json_body`` is serialised as JSON (and sets ``content-type`` unless given);
    ``body`` is sent as is: bytes are base64-encoded when ``is_base64`` is true.
    Header names are lower-cased as API Gateway does; a header whose value is
    None is left out. ``route_key`` defaults to the path with each path
    parameter's value replaced by ``{name}``.
    """
    method = method.upper()
    hdrs: dict[str, str] = {"host": DOMAIN, "user-agent": "imagemint-tests/1.0", "x-forwarded-proto": "https"}
    given = {str(k).lower(): v for k, v in (headers or {}).items()}
    if json_body is not _MISSING:
        if body is not None:
            raise ValueError("give json_body or body, not both")
        body = json.dumps(json_body)
        given.setdefault("content-type", "application/json")
    hdrs.update({k: v for k, v in given.items() if v is not None})
    for k in [k for k, v in given.items() if v is None]:
        hdrs.pop(k, None)

    if route_key is None:
        segments = path.split("/")
        for name, value in (path_params or {}).items():
            segments = [f"{{{name}}}" if s == value else s for s in segments]
        route_key = f"{method} {'/'.join(segments)}"

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": hdrs.get("user-agent", ""),
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": route_key,
            "stage": "$default",
            "time": REQUEST_TIME,
            "timeEpoch": REQUEST_EPOCH_MS,
        },
        "isBase64Encoded": bool(is_base64),
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if path_params:
        event["pathParameters"] = dict(path_params)
    if body is not None:
        if isinstance(body, bytes):
            body = base64.b64encode(body).decode("ascii") if is_base64 else body.decode("utf-8")
        event["body"] = body
    return event


def rebuild(sample: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API sample event rebuilt through :func:`http_event` from its parts."""
    http = sample["requestContext"]["http"]
    return http_event(
        http["method"],
        sample["rawPath"],
        headers=sample.get("headers"),
        query=sample.get("queryStringParameters"),
        body=sample.get("body"),
        is_base64=sample.get("isBase64Encoded", False),
        path_params=sample.get("pathParameters"),
        route_key=sample.get("routeKey"),
    )


def load_event(
    name: str, *, key: str | None = None, account_id: str | None = None, job_id: str | None = None
) -> dict[str, Any]:
    """A sample from ``events/`` with its placeholders replaced; HTTP samples go through the builder."""
    text = (EVENTS_DIR / name).read_text(encoding="utf-8")
    for placeholder, value in (
        (PLACEHOLDER_KEY, key),
        (PLACEHOLDER_ACCOUNT_ID, account_id),
        (PLACEHOLDER_JOB_ID, job_id),
    ):
        if value is not None:
            text = text.replace(placeholder, value)
    data = json.loads(text)
    return rebuild(data) if "requestContext" in data else data


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------- bodies


def png(width: int = 8, height: int = 8, color: tuple[int, int, int, int] = (200, 40, 80, 255)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def multipart(
    fields: dict[str, str] | None = None,
    files: list[tuple[str, str, str, bytes]] | None = None,
    boundary: str = "imagemint-test-boundary",
) -> tuple[str, bytes]:
    """(content-type header, body) of a multipart/form-data form; files are (field, filename, type, data)."""
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode("utf-8", "surrogatepass") + b"\r\n")  # garbage stays garbage
    for name, filename, ctype, data in files or []:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", out.getvalue()


# --------------------------------------------------------------------------- handlers


@dataclass
class LambdaContext:
    function_name: str = "imagemint-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imagemint-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/imagemint-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` imported by file path (once per test session)."""
    module_name = f"imagemint_function_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS_DIR / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


def invoke(name: str, event: dict[str, Any]) -> Reply:
    """Call ``functions/<name>/app.py``'s ``lambda_handler`` with an HTTP API event."""
    out = load_function(name).lambda_handler(event, LambdaContext(function_name=name))
    body = out.get("body") or ""
    if out.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    headers = {str(k).lower(): str(v) for k, v in (out.get("headers") or {}).items()}
    return Reply(int(out["statusCode"]), headers, body)


def invoke_step(name: str, payload: dict[str, Any]) -> Any:
    """Call a state machine task's ``lambda_handler`` with its Step Functions input."""
    return load_function(name).lambda_handler(payload, LambdaContext(function_name=name))
