"""Protocol stubs of the image providers, for tests.

Each stub is a small threaded HTTP server bound to 127.0.0.1 on a free port
that speaks the provider's real wire protocol (the real SDKs are pointed at
it), records every request it receives (method, path, headers, parsed JSON or
multipart fields and files) and can be told to misbehave for the next requests
(:meth:`StubServer.inject`). Fixtures that start and stop them live in
:mod:`stubs.fixtures`.

- :class:`stubs.openai_stub.OpenAIStub`: ``POST /v1/images/generations`` and
  ``POST /v1/images/edits``.
- :class:`stubs.fal_stub.FalStub`: fal's queue (submit, status, result,
  cancel) and the image files its results point to.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["Fault", "Recorded", "Reply", "StubServer", "Upload", "make_image", "parse_multipart"]

_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
_PALETTE = [(220, 60, 60), (60, 160, 220), (90, 190, 90), (230, 180, 40), (150, 90, 200)]


def make_image(width: int, height: int, fmt: str = "png", index: int = 0) -> tuple[bytes, str]:
    """A real (solid-colour) image of the given size and format, and its media type."""
    from PIL import Image

    pil_format, media_type = _FORMATS.get(fmt, _FORMATS["png"])
    img = Image.new("RGB", (max(1, width), max(1, height)), _PALETTE[index % len(_PALETTE)])
    buf = io.BytesIO()
    img.save(buf, pil_format)
    return buf.getvalue(), media_type


@dataclass(frozen=True)
class Upload:
    """One file of a multipart request."""

    field: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Recorded:
    """One request a stub received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    route: str = ""
    json: Any = None
    fields: dict[str, list[str]] = field(default_factory=dict)  # multipart text fields
    files: list[Upload] = field(default_factory=list)  # multipart files


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Fault:
    kind: str
    times: int | None  # None: until cleared
    on: frozenset[str] | None  # route names; None: every route
    params: dict[str, Any]


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], list[Upload]]:
    """Text fields and files of a ``multipart/form-data`` body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, list[str]] = {}
    files: list[Upload] = []
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append(Upload(str(name), filename, part.get_content_type(), payload))
        else:
            fields.setdefault(str(name), []).append(payload.decode("utf-8"))
    return fields, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        ctype = rec.headers.get("content-type", "")
        if ctype.startswith("application/json") and body:
            try:
                rec.json = json.loads(body)
            except ValueError:
                rec.json = None
        elif ctype.startswith("multipart/form-data"):
            rec.fields, rec.files = parse_multipart(ctype, body)
        try:
            reply = stub._dispatch(rec)
        except Exception as exc:  # a bug in the stub: answer 599 so the test sees it
            reply = Reply.json(599, {"stub_error": repr(exc)})
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # http.server's naming

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    stub: StubServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class StubServer:
    """Base of the stubs: the server, the request log and fault injection."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.stub = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends injected delays at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stub not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ faults

    def inject(
        self, kind: str, *, times: int | None = 1, on: str | tuple[str, ...] | None = None, **params: Any
    ) -> None:
        """Make the next ``times`` requests (on the named routes) misbehave as ``kind``.

        ``times=None`` keeps the fault until :meth:`clear_faults`. Faults are
        used in the order they were injected. The kinds each stub knows are
        listed in its docstring.
        """
        routes = frozenset([on] if isinstance(on, str) else on) if on is not None else None
        with self._lock:
            self._faults.append(Fault(kind, times, routes, params))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.on is None or route in fault.on:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def sleep(self, seconds: float) -> None:
        """An injected delay; cut short when the stub stops."""
        self._stopping.wait(seconds)

    # ------------------------------------------------------------------ requests

    def on(self, route: str, *, method: str | None = None) -> list[Recorded]:
        """The recorded requests of one route (in order)."""
        with self._lock:
            return [r for r in self.requests if r.route == route and (method is None or r.method == method)]

    def _dispatch(self, rec: Recorded) -> Reply:
        rec.route = self.route_of(rec)
        with self._lock:
            self.requests.append(rec)
        fault = self._take_fault(rec.route)
        if fault is not None:
            reply = self.fault_reply(fault, rec)
            if reply is not None:
                return reply
        return self.handle(rec)

    def route_of(self, rec: Recorded) -> str:
        raise NotImplementedError

    def handle(self, rec: Recorded) -> Reply:
        raise NotImplementedError

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply | None:
        """The reply for a fault, or None to go on with the normal answer (after a delay)."""
        if fault.kind == "delay":
            self.sleep(float(fault.params.get("seconds", 5.0)))
            return None
        if fault.kind == "http":
            body = fault.params.get("body", b"")
            if isinstance(body, bytes):
                return Reply(int(fault.params["status"]), body, dict(fault.params.get("headers", {})))
            return Reply.json(int(fault.params["status"]), body, fault.params.get("headers"))
        if fault.kind == "malformed":
            return Reply(200, b'{"created": 1, "data": [{"b64_json": ', {"Content-Type": "application/json"})
        raise ValueError(f"unknown fault kind {fault.kind!r}")
