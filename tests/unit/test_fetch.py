"""imagemint.adapters.net.fetch: SSRF guard, limits and type checks of the reference-image fetcher.

Every refusal runs through a fake resolver and a fake connection factory; an
autouse fixture makes any connect to a non-loopback address fail the test, so
no test can reach the addresses it is about. The few tests that need a real
socket talk to servers they start on 127.0.0.1 (marked ``loopback_sockets``).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from imagemint.adapters.net.fetch import (
    MAX_REDIRECTS,
    PinnedOpener,
    check_address,
    decode_base64_image,
    fetch_image,
    image_dimensions,
    sniff_media_type,
)
from imagemint.errors import InputRefused

MB = 1024 * 1024


def _image(fmt: str, size: tuple[int, int] = (7, 5), **save: object) -> bytes:
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    img = Image.new(mode, size, (200, 30, 60, 255) if mode == "RGBA" else (200, 30, 60))
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


PNG = _image("PNG")
JPEG = _image("JPEG")
WEBP = _image("WEBP")
GIF = _image("GIF")


# --------------------------------------------------------------------------- the socket guard


@pytest.fixture(autouse=True)
def only_loopback_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connect to a non-loopback address fails the test instead of dialling."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _check(address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        try:
            loopback = ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"test tried to connect to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        _check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def test_the_socket_guard_stops_non_loopback_connects() -> None:
    with socket.socket() as s, pytest.raises(AssertionError, match="10.255.255.1"):
        s.connect(("10.255.255.1", 80))


# --------------------------------------------------------------------------- fakes


class FakeResponse:
    def __init__(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        chunk: int = 1 << 20,
        delay: float = 0.0,
    ) -> None:
        self.status = status
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        self._body = io.BytesIO(body)
        self._chunk = chunk
        self._delay = delay

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name.lower(), default)

    def read(self, amt: int | None = None) -> bytes:
        if self._delay:
            time.sleep(self._delay)
        return self._body.read(min(amt or self._chunk, self._chunk))


class FakeNet:
    """A fake internet: (address, path) -> response; records every connection it opens."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], FakeResponse] = {}
        self.opened: list[dict[str, object]] = []
        self.requests: list[dict[str, object]] = []

    def route(self, address: str, path: str, response: FakeResponse) -> None:
        self.routes[(address, path)] = response

    def opener(self, *, scheme: str, address: str, port: int, host: str, timeout: float) -> FakeConnection:
        opened = {"scheme": scheme, "address": address, "port": port, "host": host, "timeout": timeout}
        self.opened.append(opened)
        return FakeConnection(self, opened)


class FakeConnection:
    def __init__(self, net: FakeNet, opened: dict[str, object]) -> None:
        self.net = net
        self.opened = opened
        self.path = ""
        self.closed = False

    def request(
        self, method: str, url: str, body: None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.path = url
        self.net.requests.append(
            {"method": method, "path": url, "headers": dict(headers or {}), **self.opened}
        )

    def getresponse(self) -> FakeResponse:
        key = (str(self.opened["address"]), self.path)
        if key not in self.net.routes:
            return FakeResponse(404, {"Content-Type": "text/plain"}, b"not found")
        return self.net.routes[key]

    def close(self) -> None:
        self.closed = True


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror("unknown host")
        return list(self.table[host])


PUBLIC = "93.184.215.14"
PUBLIC6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def _png_route(net: FakeNet, address: str = PUBLIC, path: str = "/cat.png", body: bytes = PNG) -> None:
    net.route(
        address,
        path,
        FakeResponse(200, {"Content-Type": "image/png", "Content-Length": str(len(body))}, body),
    )


def _fetch(url: str, net: FakeNet, resolver: FakeResolver, **kw: object) -> object:
    kw.setdefault("max_bytes", MB)
    kw.setdefault("timeout", 5.0)
    return fetch_image(url, name="reference_image_url", resolver=resolver, opener=net.opener, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- refusals by address

REFUSED_ADDRESSES = [
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.20", "private"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "metadata"),
    ("169.254.10.10", "link-local"),
    ("fd00:ec2::254", "metadata"),
    ("100.64.0.7", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("100.100.100.200", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::a00:1", "private"),
    ("2002:a00:1::1", "private"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 (an address the guard must refuse)
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fec0::1", "site-local"),
    ("198.18.0.1", "private"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_hosts_resolving_to_internal_addresses_are_refused(address: str, reason: str) -> None:
    net = FakeNet()
    _png_route(net, address)
    resolver = FakeResolver({"images.example": [address]})
    with pytest.raises(InputRefused) as info:
        _fetch("https://images.example/cat.png", net, resolver)
    err = info.value
    assert err.param == "reference_image_url"
    assert err.message.startswith("reference_image_url: ")
    assert reason in err.message
    assert net.opened == []  # nothing was dialled
    assert resolver.calls == ["images.example"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cat.png",
        "http://[::1]/cat.png",
        "http://[::ffff:10.0.0.1]/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://2130706433/cat.png",  # 127.0.0.1 as one number
        "http://0x7f.1/cat.png",  # 127.0.0.1 in inet_aton's hex form
        "http://0177.0.0.1/cat.png",  # octal
        "http://0/cat.png",
        "http://10.0.0.1:8080/cat.png",
    ],
)
def test_ip_literals_are_checked_without_dns(url: str) -> None:
    net = FakeNet()
    resolver = FakeResolver({})
    with pytest.raises(InputRefused):
        _fetch(url, net, resolver)
    assert resolver.calls == []
    assert net.opened == []


@pytest.mark.parametrize(
    "host",
    ["metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata", "something.internal", "localhost"],
)
def test_metadata_and_local_names_are_refused_before_resolution(host: str) -> None:
    net = FakeNet()
    resolver = FakeResolver({host.lower().rstrip("."): [PUBLIC]})
    with pytest.raises(InputRefused, match="not allowed"):
        _fetch(f"http://{host}/computeMetadata/v1/", net, resolver)
    assert resolver.calls == []
    assert net.opened == []


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    net = FakeNet()
    _png_route(net)
    resolver = FakeResolver({"images.example": [PUBLIC, "10.0.0.5"]})
    with pytest.raises(InputRefused, match="private"):
        _fetch("https://images.example/cat.png", net, resolver)
    assert net.opened == []


def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(InputRefused, match="could not be resolved"):
        _fetch("https://nowhere.example/x.png", FakeNet(), FakeResolver({}))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://images.example/cat.png", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://images.example/", "scheme 'gopher'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("//images.example/cat.png", "scheme 'none'"),
        ("images.example/cat.png", "scheme 'none'"),
        ("https://user:secret@images.example/cat.png", "credentials"),
        ("https:///cat.png", "no host"),
        ("http://images.example:99999/cat.png", "malformed"),
    ],
)
def test_bad_urls_are_refused(url: str, fragment: str) -> None:
    net = FakeNet()
    with pytest.raises(InputRefused, match=fragment) as info:
        _fetch(url, net, FakeResolver({"images.example": [PUBLIC]}))
    assert info.value.param == "reference_image_url"
    assert net.opened == []


def test_check_address_allows_public_and_optionally_loopback() -> None:
    assert check_address(PUBLIC) is None
    assert check_address(PUBLIC6) is None
    assert check_address("::ffff:93.184.215.14") is None
    assert check_address("127.0.0.1") == "a loopback address"
    assert check_address("127.0.0.1", allow_loopback=True) is None
    assert check_address("::1", allow_loopback=True) is None
    # allow_loopback opens loopback only
    assert check_address("10.0.0.1", allow_loopback=True) == "a private address"
    assert check_address("169.254.169.254", allow_loopback=True) == "a cloud metadata address"
    assert check_address("not-an-ip") == "not an IP address"


# --------------------------------------------------------------------------- successful fetches and pinning


def test_public_fetch_pins_the_checked_address_and_keeps_the_host_name() -> None:
    net = FakeNet()
    _png_route(net)
    resolver = FakeResolver({"images.example": [PUBLIC]})
    image = _fetch("https://images.example/cat.png", net, resolver, timeout=3.0)
    assert image.data == PNG
    assert image.media_type == "image/png"
    assert image.name == "reference_image_url"
    [opened] = net.opened
    assert opened["address"] == PUBLIC  # the connection goes to the IP that was checked
    assert opened["host"] == "images.example"  # SNI / certificate name
    assert opened["port"] == 443
    assert 0 < float(opened["timeout"]) <= 3.0  # type: ignore[arg-type]
    [req] = net.requests
    assert req["headers"]["Host"] == "images.example"  # type: ignore[index]
    assert req["headers"]["Accept-Encoding"] == "identity"  # type: ignore[index]
    assert req["path"] == "/cat.png"


def test_dns_is_resolved_once_per_hop_so_rebinding_cannot_swap_the_address() -> None:
    class Rebinding:
        calls = 0

        def __call__(self, host: str) -> list[str]:
            self.calls += 1
            return [PUBLIC] if self.calls == 1 else ["169.254.169.254"]

    net = FakeNet()
    _png_route(net)
    resolver = Rebinding()
    fetch_image(
        "http://images.example/cat.png",
        name="image",
        max_bytes=MB,
        timeout=5,
        resolver=resolver,
        opener=net.opener,
    )
    assert resolver.calls == 1
    assert [o["address"] for o in net.opened] == [PUBLIC]


def test_ipv6_public_address_and_non_default_port() -> None:
    net = FakeNet()
    _png_route(net, PUBLIC6, "/a.png?v=1")
    resolver = FakeResolver({"v6.example": [PUBLIC6]})
    image = _fetch("http://v6.example:8080/a.png?v=1", net, resolver)
    assert image.media_type == "image/png"
    assert net.opened[0]["port"] == 8080
    assert net.requests[0]["headers"]["Host"] == "v6.example:8080"  # type: ignore[index]


def test_ipv4_mapped_public_address_connects_over_ipv4() -> None:
    net = FakeNet()
    _png_route(net)
    _fetch("http://m.example/cat.png", net, FakeResolver({"m.example": ["::ffff:" + PUBLIC]}))
    assert net.opened[0]["address"] == PUBLIC


@pytest.mark.parametrize(
    ("body", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp"), (GIF, "image/gif")],
)
def test_every_allowed_type_is_accepted(body: bytes, media_type: str) -> None:
    net = FakeNet()
    net.route(PUBLIC, "/i", FakeResponse(200, {"Content-Type": f"{media_type}; charset=binary"}, body))
    image = _fetch("http://images.example/i", net, FakeResolver({"images.example": [PUBLIC]}))
    assert image.media_type == media_type
    assert image.data == body


# --------------------------------------------------------------------------- redirects


def _redirect(location: str, status: int = 302) -> FakeResponse:
    return FakeResponse(status, {"Location": location})


def test_redirect_to_the_metadata_address_is_refused() -> None:
    net = FakeNet()
    net.route(
        PUBLIC, "/cat.png", _redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    )
    resolver = FakeResolver({"images.example": [PUBLIC]})
    with pytest.raises(InputRefused, match="metadata"):
        _fetch("https://images.example/cat.png", net, resolver)
    assert [o["address"] for o in net.opened] == [PUBLIC]  # the metadata address was never dialled


def test_redirect_to_a_name_that_resolves_privately_is_refused() -> None:
    net = FakeNet()
    net.route(PUBLIC, "/cat.png", _redirect("http://internal.example/admin"))
    resolver = FakeResolver({"images.example": [PUBLIC], "internal.example": ["10.20.30.40"]})
    with pytest.raises(InputRefused, match="private"):
        _fetch("https://images.example/cat.png", net, resolver)
    assert resolver.calls == ["images.example", "internal.example"]
    assert len(net.opened) == 1


def test_redirect_to_metadata_google_internal_is_refused() -> None:
    net = FakeNet()
    net.route(PUBLIC, "/cat.png", _redirect("http://metadata.google.internal/computeMetadata/v1/"))
    with pytest.raises(InputRefused, match="not allowed"):
        _fetch("https://images.example/cat.png", net, FakeResolver({"images.example": [PUBLIC]}))


def test_redirect_to_another_scheme_is_refused() -> None:
    net = FakeNet()
    net.route(PUBLIC, "/cat.png", _redirect("file:///etc/passwd"))
    with pytest.raises(InputRefused, match="scheme 'file'"):
        _fetch("https://images.example/cat.png", net, FakeResolver({"images.example": [PUBLIC]}))


def test_relative_redirects_are_followed_up_to_the_limit() -> None:
    net = FakeNet()
    net.route(PUBLIC, "/0", _redirect("/1", 301))
    net.route(PUBLIC, "/1", _redirect("/2", 307))
    net.route(PUBLIC, "/2", _redirect("https://cdn.example/final.png", 308))
    net.route("93.184.215.15", "/final.png", FakeResponse(200, {"Content-Type": "image/png"}, PNG))
    resolver = FakeResolver({"images.example": [PUBLIC], "cdn.example": ["93.184.215.15"]})
    image = _fetch("https://images.example/0", net, resolver)
    assert image.data == PNG
    assert len(net.opened) == MAX_REDIRECTS + 1
    assert net.opened[-1]["host"] == "cdn.example"
    assert net.requests[-1]["headers"]["Host"] == "cdn.example"  # type: ignore[index]


def test_too_many_redirects_are_refused() -> None:
    net = FakeNet()
    for i in range(MAX_REDIRECTS + 1):
        net.route(PUBLIC, f"/{i}", _redirect(f"/{i + 1}"))
    _png_route(net, path=f"/{MAX_REDIRECTS + 1}")
    with pytest.raises(InputRefused, match="redirects"):
        _fetch("https://images.example/0", net, FakeResolver({"images.example": [PUBLIC]}))
    assert len(net.opened) == MAX_REDIRECTS + 1


def test_redirect_without_location_is_refused() -> None:
    net = FakeNet()
    net.route(PUBLIC, "/cat.png", FakeResponse(302, {}))
    with pytest.raises(InputRefused, match="Location"):
        _fetch("https://images.example/cat.png", net, FakeResolver({"images.example": [PUBLIC]}))


# --------------------------------------------------------------------------- size, type, status, time


def _one(response: FakeResponse, **kw: object) -> object:
    net = FakeNet()
    net.route(PUBLIC, "/i", response)
    return _fetch("https://images.example/i", net, FakeResolver({"images.example": [PUBLIC]}), **kw)


def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    response = FakeResponse(200, {"Content-Type": "image/png", "Content-Length": str(10 * MB)}, PNG)
    with pytest.raises(InputRefused, match="larger than 1000 bytes"):
        _one(response, max_bytes=1000)
    assert response._body.tell() == 0


def test_streamed_body_over_the_cap_is_aborted() -> None:
    body = PNG + b"\0" * 5000
    response = FakeResponse(200, {"Content-Type": "image/png"}, body, chunk=512)
    with pytest.raises(InputRefused, match="larger than 2000 bytes"):
        _one(response, max_bytes=2000)
    assert response._body.tell() <= 2000 + 512  # stopped at the first chunk past the cap


def test_body_exactly_at_the_cap_is_accepted() -> None:
    image = _one(FakeResponse(200, {"Content-Type": "image/png"}, PNG, chunk=10), max_bytes=len(PNG))
    assert image.data == PNG  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        ("text/html", "'text/html'"),
        ("image/svg+xml", "'image/svg+xml'"),
        ("application/octet-stream", "'application/octet-stream'"),
        (None, "'missing'"),
    ],
)
def test_wrong_content_types_are_refused(content_type: str | None, fragment: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with pytest.raises(InputRefused, match=re.escape(fragment)):
        _one(FakeResponse(200, headers, PNG))


def test_magic_bytes_must_match_the_content_type() -> None:
    with pytest.raises(InputRefused, match="says image/png but the data is image/jpeg"):
        _one(FakeResponse(200, {"Content-Type": "image/png"}, JPEG))


def test_a_body_that_is_no_image_is_refused() -> None:
    with pytest.raises(InputRefused, match="not a PNG, JPEG, WebP or GIF"):
        _one(FakeResponse(200, {"Content-Type": "image/png"}, b"<html>hello</html>"))


def test_compressed_bodies_are_refused() -> None:
    with pytest.raises(InputRefused, match="gzip"):
        _one(FakeResponse(200, {"Content-Type": "image/png", "Content-Encoding": "gzip"}, PNG))


@pytest.mark.parametrize("status", [204, 304, 403, 404, 500])
def test_non_200_answers_are_refused(status: int) -> None:
    with pytest.raises(InputRefused, match=f"HTTP {status}"):
        _one(FakeResponse(status, {"Content-Type": "image/png"}, PNG))


def test_the_total_time_is_capped() -> None:
    slow = FakeResponse(200, {"Content-Type": "image/png"}, PNG + b"\0" * 1000, chunk=10, delay=0.02)
    start = time.monotonic()
    with pytest.raises(InputRefused, match="too long"):
        _one(slow, timeout=0.2)
    assert time.monotonic() - start < 1.0


# --------------------------------------------------------------------------- data URIs and base64


def _data_uri(body: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(body).decode()}"


def test_data_uris_are_decoded_without_any_network() -> None:
    net = FakeNet()
    resolver = FakeResolver({})
    image = _fetch(_data_uri(WEBP, "image/webp"), net, resolver)
    assert image.data == WEBP
    assert image.media_type == "image/webp"
    assert net.opened == [] and resolver.calls == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (_data_uri(PNG, "image/jpeg"), "says image/jpeg but the data is image/png"),
        (_data_uri(b"plain text", "text/plain"), "'text/plain'"),
        (_data_uri(PNG, "image/svg+xml"), "'image/svg+xml'"),
        ("data:image/png," + "abc", "base64-encoded"),
        ("data:image/png;base64", "no comma"),
        ("data:image/png;base64,@@@notbase64@@@", "not valid base64"),
        ("data:image/png;base64,", "empty"),
        (_data_uri(b"GIF? no, just text"), "not a PNG"),
    ],
)
def test_bad_data_uris_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(InputRefused, match=re.escape(fragment)) as info:
        fetch_image(value, name="image", max_bytes=MB, timeout=1)
    assert info.value.param == "image"


def test_data_uri_over_the_cap_is_refused_before_decoding() -> None:
    with pytest.raises(InputRefused, match="larger than 100 bytes"):
        decode_base64_image(_data_uri(PNG + b"\0" * 1000), name="mask", max_bytes=100)


def test_raw_base64_jpeg_aliases_and_urlsafe_alphabet() -> None:
    raw = base64.b64encode(JPEG).decode()
    assert decode_base64_image(raw, name="image", max_bytes=MB).media_type == "image/jpeg"
    wrapped = "\n".join(raw[i : i + 60] for i in range(0, len(raw), 60))
    assert decode_base64_image(wrapped, name="image", max_bytes=MB).data == JPEG
    assert (
        decode_base64_image(_data_uri(JPEG, "image/jpg"), name="image", max_bytes=MB).media_type
        == "image/jpeg"
    )
    urlsafe = base64.urlsafe_b64encode(JPEG).decode().rstrip("=")
    assert decode_base64_image(urlsafe, name="image", max_bytes=MB).data == JPEG


# --------------------------------------------------------------------------- image helpers


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (_image("PNG", (31, 17)), "image/png"),
        (_image("JPEG", (31, 17)), "image/jpeg"),
        (_image("JPEG", (31, 17), progressive=True), "image/jpeg"),
        (_image("WEBP", (31, 17)), "image/webp"),  # RGBA lossy: VP8X
        (_image("WEBP", (31, 17), lossless=True), "image/webp"),  # VP8L
        (_image("GIF", (31, 17)), "image/gif"),
    ],
)
def test_dimensions_and_sniffing(body: bytes, media_type: str) -> None:
    assert sniff_media_type(body) == media_type
    assert image_dimensions(body) == (31, 17)


def test_dimensions_of_plain_lossy_webp_and_garbage() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), (1, 2, 3)).save(buf, "WEBP")  # simple VP8
    assert image_dimensions(buf.getvalue()) == (40, 24)
    assert image_dimensions(b"not an image") is None
    assert image_dimensions(PNG[:12]) is None
    assert sniff_media_type(b"") is None


# --------------------------------------------------------------------------- real sockets on 127.0.0.1


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen_hosts: list[str] = []

    def do_GET(self) -> None:  # http.server's naming
        self.seen_hosts.append(self.headers.get("Host", ""))
        status, headers, body = self.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"no"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, type[_ImageHandler]]]:
    handler = type("Handler", (_ImageHandler,), {"routes": {}, "seen_hosts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.loopback_sockets
def test_real_fetch_from_a_loopback_server_with_allow_loopback(
    local_server: tuple[str, type[_ImageHandler]],
) -> None:
    base, handler = local_server
    handler.routes["/start"] = (302, {"Location": "/cat.png"}, b"")
    handler.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    image = fetch_image(f"{base}/start", name="image", max_bytes=MB, timeout=2, allow_loopback=True)
    assert image.data == PNG and image.media_type == "image/png"
    port = base.rsplit(":", 1)[1]
    assert handler.seen_hosts == [f"127.0.0.1:{port}"] * 2


@pytest.mark.loopback_sockets
def test_the_same_loopback_server_is_refused_without_allow_loopback(
    local_server: tuple[str, type[_ImageHandler]],
) -> None:
    base, handler = local_server
    handler.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    with pytest.raises(InputRefused, match="loopback"):
        fetch_image(f"{base}/cat.png", name="image", max_bytes=MB, timeout=2)
    assert handler.seen_hosts == []


@pytest.mark.loopback_sockets
def test_allow_loopback_still_refuses_a_redirect_to_metadata(
    local_server: tuple[str, type[_ImageHandler]],
) -> None:
    base, handler = local_server
    handler.routes["/cat.png"] = (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    with pytest.raises(InputRefused, match="metadata"):
        fetch_image(f"{base}/cat.png", name="image", max_bytes=MB, timeout=2, allow_loopback=True)


@pytest.mark.loopback_sockets
def test_real_streamed_size_cap(local_server: tuple[str, type[_ImageHandler]]) -> None:
    base, handler = local_server
    handler.routes["/big.png"] = (200, {"Content-Type": "image/png"}, PNG + b"\0" * 300_000)
    with pytest.raises(InputRefused, match="larger than"):
        fetch_image(f"{base}/big.png", name="image", max_bytes=100_000, timeout=2, allow_loopback=True)


@pytest.mark.loopback_sockets
def test_a_server_dripping_bytes_cannot_outlast_the_deadline() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n" + PNG[:8]
            )
            while not stop.wait(0.05):
                try:
                    conn.sendall(b"\0")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(InputRefused, match="too long"):
            fetch_image(
                f"http://127.0.0.1:{port}/x.png", name="image", max_bytes=MB, timeout=0.5, allow_loopback=True
            )
        assert time.monotonic() - start < 1.5
    finally:
        stop.set()
        listener.close()
        thread.join(2)


# ------------------------------------------------------------------ TLS: SNI and cert name from the URL


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_server(tmp_path: object) -> Iterator[tuple[int, ssl.SSLContext, type[_ImageHandler], list[str]]]:
    import pathlib

    folder = pathlib.Path(str(tmp_path))
    cert_pem, key_pem = _self_signed("images.test")
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    sni: list[str] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name or "")  # type: ignore[assignment,misc]
    handler = type("Handler", (_ImageHandler,), {"routes": {}, "seen_hosts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    try:
        yield server.server_address[1], client_ctx, handler, sni
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.loopback_sockets
def test_https_connects_to_the_pinned_address_with_the_original_name_for_sni(
    tls_server: tuple[int, ssl.SSLContext, type[_ImageHandler], list[str]],
) -> None:
    port, client_ctx, handler, sni = tls_server
    handler.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    resolver = FakeResolver({"images.test": ["127.0.0.1"]})
    image = fetch_image(
        f"https://images.test:{port}/cat.png",
        name="image",
        max_bytes=MB,
        timeout=2,
        resolver=resolver,
        opener=PinnedOpener(client_ctx),
        allow_loopback=True,
    )
    assert image.data == PNG
    assert sni == ["images.test"]
    assert handler.seen_hosts == [f"images.test:{port}"]


@pytest.mark.loopback_sockets
def test_https_certificate_must_match_the_url_host(
    tls_server: tuple[int, ssl.SSLContext, type[_ImageHandler], list[str]],
) -> None:
    port, client_ctx, handler, _ = tls_server
    handler.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    resolver = FakeResolver({"other.test": ["127.0.0.1"]})
    with pytest.raises(InputRefused, match="TLS"):
        fetch_image(
            f"https://other.test:{port}/cat.png",
            name="image",
            max_bytes=MB,
            timeout=2,
            resolver=resolver,
            opener=PinnedOpener(client_ctx),
            allow_loopback=True,
        )
