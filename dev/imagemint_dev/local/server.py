"""HTTP front of the local runtime: requests in, API Gateway HTTP API (payload 2.0) events out.

Routes come from ``template.yaml``. What the front answers by itself is in API
Gateway's own error shape, ``{"message": "<reason>"}`` (JSON, never an HTML page,
never an echo of the request), and every answer, the functions' included,
carries ``X-Content-Type-Options: nosniff``:

* an unmatched route answers as API Gateway HTTP API does: 404
  ``{"message":"Not Found"}``; a path with a trailing slash or an empty segment
  (``/v1/images/generations/``) matches no route, as in API Gateway, so it is
  that 404 too, not the function's own;
* a path that is routed, with a method that is not: 404 ``{"message":"Not
  Found"}`` as well, as API Gateway HTTP API answers (a route is a method and a
  path: a client can tell nothing more from AWS, so the emulation says nothing more);
* bodies over API Gateway's 10 MB limit: 413 ``{"message":"Request Entity Too
  Large"}``; a request line over :data:`MAX_REQUEST_LINE` bytes: 414; headers
  over :data:`MAX_HEADER_BYTES` bytes together (API Gateway's quota for the
  request line and headers is 10 KB), or too many or too long lines: 431; a
  body without ``Content-Length`` (chunked): 411; ``TRACE`` and methods HTTP
  APIs do not route (``CONNECT``, unknown ones): 501; a malformed request: 400;
* a function response over Lambda's 6 MB limit becomes a 500, as in AWS; an event over Lambda's
  request limit (6,291,456 bytes: a binary body travels base64-encoded in it) is a 413 and the
  function never runs;
* time limits as in AWS: a function still running after HTTP API's integration
  timeout (:data:`INTEGRATION_TIMEOUT_S`, 30 s; tests may lower it) is answered
  503 ``{"message":"Service Unavailable"}`` (the function runs on); one past its
  own Lambda timeout when that is shorter (``Sandbox.Timedout``) gets 500, like
  any function error.

Each request can be reported (``request_log``) with the job id its answer carries
(:func:`job_id_of`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from imagemint_dev.local.output import begin_request
from imagemint_dev.local.runner import InProcessFunction, StillRunning
from imagemint_dev.local.template import Route

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
#: HTTP API's integration timeout (the most it allows): the client gets 503, the function runs on.
INTEGRATION_TIMEOUT_S = 30.0
LAMBDA_MAX_RESPONSE = 6 * 1024 * 1024
LAMBDA_MAX_REQUEST = 6_291_456  # a synchronous invocation's event, base64 body included
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 10 * 1024
NOSNIFF = ("X-Content-Type-Options", "nosniff")
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")

# Extra local routes (e.g. the local Arweave gateway): (method, path) -> (status, headers, body) or None.
LocalRoute = Callable[[str, str], tuple[int, dict[str, str], bytes] | None]
# Told of each request once answered, before the answer is sent: (method, path, status, ms, job id or None).
RequestLog = Callable[[str, str, int, float, str | None], None]

log = logging.getLogger("imagemint_dev.local")


def gateway_error(status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """An answer of the front itself, in API Gateway's shape: ``{"message": "<reason phrase>"}``."""
    body = json.dumps({"message": HTTPStatus(status).phrase}, separators=(",", ":")).encode()
    return status, [("Content-Type", "application/json")], body


_UUID = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_JOB_FIELD = re.compile(rb'"job_?[iI]d"\s*:\s*"(' + _UUID + rb')"')
# A job's URL (/api/jobs/<id>), its durable file URLs (/api/files/<id>/...) and its S3 keys (images/<id>/...).
_JOB_PATH = re.compile(rb"/(?:api/jobs|api/files|images)/(" + _UUID + rb")(?![0-9a-f-])")


def job_id_of(headers: list[tuple[str, str]], body: bytes) -> str | None:
    """The job an answer is about: its ``Location`` header, a ``job_id`` field, or a job's file URL in it."""
    for name, value in headers:
        if name.lower() == "location":
            m = _JOB_PATH.search(value.encode("utf-8", "replace"))
            if m:
                return m.group(1).decode()
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "application/json").lower()
    if body and any(ctype.startswith(t) for t in _TEXT_TYPES):
        for pattern in (_JOB_FIELD, _JOB_PATH):
            m = pattern.search(body)
            if m:
                return m.group(1).decode()
    return None


def build_event(
    route: Route,
    params: dict[str, str],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    parts = urlsplit(target)
    hdrs: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in headers:
        lk = k.lower()
        if lk == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        hdrs[lk] = f"{hdrs[lk]},{v}" if lk in hdrs else v
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    ctype = hdrs.get("content-type", "").lower()
    is_text = any(ctype.startswith(t) for t in _TEXT_TYPES)
    if body and is_text:
        try:
            text, b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, b64 = base64.b64encode(body).decode("ascii"), True
    else:
        text, b64 = base64.b64encode(body).decode("ascii"), bool(body)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": hdrs.get("host", "127.0.0.1"),
            "domainPrefix": hdrs.get("host", "127.0.0.1").split(".")[0],
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": hdrs.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": b64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = text
    return event


def to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy (payload 2.0) result to status, headers and body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        body = json.dumps(result).encode()
        return 200, [("Content-Type", "application/json")], body
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for k, vs in (result.get("multiValueHeaders") or {}).items():
        headers.extend((k, str(v)) for v in vs)
    headers.extend(("Set-Cookie", c) for c in result.get("cookies") or [])
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return int(result["statusCode"]), headers, body


class LocalApi:
    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, InProcessFunction],
        local_routes: list[LocalRoute] | None = None,
    ) -> None:
        self.routes = routes
        self.functions = functions
        self.local_routes = local_routes or []

    def dispatch(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = urlsplit(target).path
        # API Gateway matches paths exactly: a trailing slash or an empty segment is another path.
        routable = path == "/" or ("//" not in path and not path.endswith("/"))
        for route in self.routes if routable else ():
            params = route.match(method, path)
            if params is not None:
                break
        else:
            for extra in self.local_routes:
                hit = extra(method, path)
                if hit is not None:
                    status, hdrs, data = hit
                    return status, list(hdrs.items()), data
            return gateway_error(404)
        if len(body) > API_GATEWAY_MAX_BODY:
            return gateway_error(413)
        event = build_event(route, params, method, target, headers, body, source_ip)
        if len(json.dumps(event)) > LAMBDA_MAX_REQUEST:
            # Lambda refuses the invocation (RequestEntityTooLargeException): the function never runs.
            log.warning("%s: the event is over Lambda's 6 MB request limit", route.function)
            return gateway_error(413)
        try:
            result = self.functions[route.function].start(event).result(INTEGRATION_TIMEOUT_S)
        except StillRunning:
            log.warning("%s ran past the integration timeout; API Gateway answers 503", route.function)
            return gateway_error(503)
        except Exception:
            log.exception("%s raised; API Gateway answers 500", route.function)
            return gateway_error(500)
        if len(json.dumps(result)) > LAMBDA_MAX_RESPONSE:
            log.warning("%s returned more than 6 MB; Lambda would refuse it", route.function)
            return gateway_error(500)
        return to_http(result)


def make_server(
    api: LocalApi, host: str, port: int, *, quiet: bool = True, request_log: RequestLog | None = None
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "imagemint-local"

        def _handle(self) -> None:
            t0 = time.perf_counter()
            begin_request()  # the job id the function logs while answering (output.py)
            status, headers, data = self._answer()
            if request_log is not None:  # before the answer goes out: a client that got it finds its line
                path = urlsplit(self.path).path
                request_log(
                    self.command, path, status, (time.perf_counter() - t0) * 1000, job_id_of(headers, data)
                )
            self.send_response(status)
            names = {k.lower() for k, _ in headers}
            for k, v in headers:
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            if "content-type" not in names and data:
                self.send_header("Content-Type", "application/json")
            if NOSNIFF[0].lower() not in names:
                self.send_header(*NOSNIFF)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
            if len(self.requestline) > MAX_REQUEST_LINE:
                self.close_connection = True
                return gateway_error(414)
            if sum(len(k) + len(v) + 4 for k, v in self.headers.items()) > MAX_HEADER_BYTES:
                self.close_connection = True
                return gateway_error(431)
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True  # the body is not read: the connection cannot be reused
                return gateway_error(411)
            raw_length = (self.headers.get("Content-Length") or "0").strip()
            if not raw_length.isdigit():
                self.close_connection = True
                return gateway_error(400)
            length = int(raw_length)
            if length > API_GATEWAY_MAX_BODY:
                remaining = min(length, 8 * API_GATEWAY_MAX_BODY)  # drain what a client may still send
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                self.close_connection = True
                return gateway_error(413)
            body = self.rfile.read(length) if length else b""
            return api.dispatch(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """What http.server answers by itself (414, 431, 501 for TRACE and unknown methods, 400 for a
            malformed request line), in API Gateway's JSON shape instead of an HTML page that echoes the
            request."""
            status, headers, data = gateway_error(int(code))
            self.close_connection = True
            if request_log is not None:
                path = urlsplit(getattr(self, "path", "") or "").path[:200]
                request_log(self.command or "-", path or "-", status, 0.0, None)
            self.send_response(status)
            for k, v in [*headers, NOSNIFF, ("Content-Length", str(len(data))), ("Connection", "close")]:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of clients (as API Gateway takes) would be reset.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (reset, broken pipe): socketserver would print the traceback.
        log.info("connection from %s:%s ended with an error", *client_address[:2], exc_info=True)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, name="imagemint-local-http", daemon=True)
    t.start()
    return t
