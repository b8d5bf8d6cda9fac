"""Server-side fetch of reference / edit images, guarded against SSRF.

Clients name reference images by URL; this module is the only place that
fetches them. Everything it refuses raises :class:`~imagemint.errors.InputRefused`
with ``param`` set to the input's name and a message that says why.

Rules, applied to the first URL and again to every redirect hop:

1. **Schemes.** ``data:`` (base64, ``image/png|jpeg|webp|gif``) is decoded in
   place; ``http`` and ``https`` are fetched; anything else is refused. URLs
   carrying credentials (``user:pass@``) are refused.
2. **Addresses.** The host is resolved once (``resolver``) and *every* address
   it resolves to must be public: private, loopback, link-local, multicast,
   reserved, unspecified, CGNAT (100.64.0.0/10), site-local, the IPv4 ranges
   hidden inside IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (``64:ff9b::/96``)
   and 6to4 (``2002::/16``) IPv6 addresses, and the cloud metadata endpoints
   (169.254.169.254, fd00:ec2::254, 100.100.100.200, ``metadata.google.internal``
   and other metadata names) are refused. Numeric host spellings such as
   ``2130706433`` or ``0x7f.1`` are read the way ``inet_aton`` reads them.
3. **Pinning.** The connection goes to the address that was checked, never to
   the name (no second DNS lookup, so DNS rebinding cannot swap the address
   between check and connect). The ``Host`` header and the TLS SNI / certificate
   check use the original name.
4. **Redirects** (301, 302, 303, 307, 308) are followed by hand, at most
   :data:`MAX_REDIRECTS`, each hop checked as above.
5. **Limits.** One deadline (``timeout`` seconds) covers resolution of every hop,
   connects, redirects and the body. The body is streamed and the fetch aborted
   as soon as it passes ``max_bytes`` (a larger ``Content-Length`` is refused
   before reading). ``Accept-Encoding: identity`` is asked for and any other
   encoding refused, so nothing is decompressed.
6. **Type.** ``Content-Type`` must be ``image/png``, ``image/jpeg``,
   ``image/webp`` or ``image/gif``, and the magic bytes of the body must agree.

Only the standard library is used (``http.client``, ``ssl``, ``socket``), so
importing this module is cheap. ``resolver`` and ``opener`` are injectable:
unit tests pass fakes and never open a socket. ``allow_loopback=True`` lets
integration tests fetch from their own servers on 127.0.0.1 / ::1 (every other
rule still applies); nothing else can turn the guard off.

Webhook deliveries (:mod:`imagemint.domain.webhooks`) go through :func:`post`: the
same scheme, address and pinning rules, no redirects followed (a 3xx is not a
delivery), one deadline. :func:`check_url` applies rules 1 and 2 without
connecting (a ``webhook_url`` is checked when the request arrives, and again
when it is delivered).

The module also exports the small image helpers the providers use:
:func:`sniff_media_type` and :func:`image_dimensions` (PNG, JPEG, WebP and GIF
headers, read without Pillow).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from imagemint.domain.ports import InputImage
from imagemint.errors import InputRefused

__all__ = [
    "ALLOWED_MEDIA_TYPES",
    "MAX_REDIRECTS",
    "Connection",
    "Opener",
    "PinnedOpener",
    "Resolver",
    "check_address",
    "check_url",
    "decode_base64_image",
    "default_resolver",
    "fetch_image",
    "image_dimensions",
    "post",
    "sniff_media_type",
]

MAX_REDIRECTS = 3
ALLOWED_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_USER_AGENT = "imagemint-fetch/1"

# Names refused before any resolution (cloud metadata services and local names).
_BLOCKED_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "localhost",
        "localhost.localdomain",
    }
)
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local")
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")

Resolver = Callable[[str], list[str]]


class _Response(Protocol):
    status: int

    def getheader(self, name: str, default: str | None = None) -> str | None: ...

    def read(self, amt: int | None = None) -> bytes: ...


class Connection(Protocol):
    """The part of :class:`http.client.HTTPConnection` the fetcher uses."""

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] = ...
    ) -> None: ...

    def getresponse(self) -> _Response: ...

    def close(self) -> None: ...


class Opener(Protocol):
    """Opens a connection to an address that was already checked.

    ``address`` is the IP to connect to, ``host`` the name from the URL (for SNI
    and certificate checks), ``timeout`` the seconds left before the deadline.
    """

    def __call__(self, *, scheme: str, address: str, port: int, host: str, timeout: float) -> Connection: ...


# --------------------------------------------------------------------------- images


def sniff_media_type(data: bytes) -> str | None:
    """The media type the magic bytes of ``data`` announce (png, jpeg, webp, gif), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG, JPEG, WebP or GIF header, or None when unreadable."""
    try:
        kind = sniff_media_type(data)
        if kind == "image/png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return (w, h) if w and h else None
        if kind == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return (w, h) if w and h else None
        if kind == "image/webp":
            return _webp_dimensions(data)
        if kind == "image/jpeg":
            return _jpeg_dimensions(data)
    except (struct.error, IndexError):
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 3 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None


def _normalise_media_type(value: str | None) -> str:
    main = (value or "").split(";", 1)[0].strip().lower()
    return _MEDIA_ALIASES.get(main, main)


# --------------------------------------------------------------------------- base64 / data URIs


def decode_base64_image(value: str, *, name: str, max_bytes: int) -> InputImage:
    """Decode a ``data:image/...;base64,`` URI or raw base64 into a checked :class:`InputImage`.

    The magic bytes decide the media type; a data URI's declared type must agree.
    """
    text = value.strip()
    declared: str | None = None
    if text[:5].lower() == "data:":
        header, sep, payload = text[5:].partition(",")
        if not sep:
            raise InputRefused(f"{name}: malformed data URI (no comma)", param=name)
        parts = [p.strip() for p in header.split(";")]
        declared = _normalise_media_type(parts[0])
        if "base64" not in (p.lower() for p in parts[1:]):
            raise InputRefused(f"{name}: data URIs must be base64-encoded", param=name)
        if declared not in ALLOWED_MEDIA_TYPES:
            raise InputRefused(
                f"{name}: data URI type '{parts[0] or 'missing'}' is not one of image/png, image/jpeg, "
                "image/webp, image/gif",
                param=name,
            )
        text = payload
    compact = "".join(text.split())
    if not compact:
        raise InputRefused(f"{name}: the image data is empty", param=name)
    if len(compact) // 4 * 3 > max_bytes + 3:
        raise InputRefused(f"{name}: the image is larger than {max_bytes} bytes", param=name)
    try:
        padded = compact + "=" * (-len(compact) % 4)
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(padded.encode("ascii"))
        else:
            data = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InputRefused(f"{name}: the image data is not valid base64", param=name) from None
    if len(data) > max_bytes:
        raise InputRefused(f"{name}: the image is larger than {max_bytes} bytes", param=name)
    sniffed = sniff_media_type(data)
    if sniffed is None:
        raise InputRefused(f"{name}: the data is not a PNG, JPEG, WebP or GIF image", param=name)
    if declared is not None and declared != sniffed:
        raise InputRefused(f"{name}: the data URI says {declared} but the data is {sniffed}", param=name)
    return InputImage(data=data, media_type=sniffed, name=name)


# --------------------------------------------------------------------------- address checks


def default_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), as strings, via ``getaddrinfo``."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0]).split("%", 1)[0]
        if addr not in out:
            out.append(addr)
    return out


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def check_address(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why ``address`` must not be fetched from (a short reason), or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = check_address(str(inner), allow_loopback=allow_loopback)
            if reason is not None:
                return f"{reason} (inside an IPv6 address)"
            if ip.ipv4_mapped is not None:
                return None
        if ip.is_site_local:
            return "a site-local address"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _literal_address(host: str) -> str | None:
    """The IP a host spelling denotes without DNS (dotted, IPv6, or inet_aton's numeric forms)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host) and any(c.isdigit() for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


# --------------------------------------------------------------------------- connections


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to a fixed address; TLS uses the original host name for SNI."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        timeout: float,
        tls_host: str | None,
        context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, port, timeout=timeout)
        self._tls_host = tls_host
        self._tls_context = context
        # Kept after http.client hands the socket to the response, so the
        # fetcher can still shorten its timeout or abort it at the deadline.
        self.pinned_sock: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.pinned_sock = sock
        if self._tls_host is not None:
            ctx = self._tls_context or ssl.create_default_context()
            try:
                sock = ctx.wrap_socket(sock, server_hostname=self._tls_host)
            except BaseException:
                sock.close()
                raise
            self.pinned_sock = sock
        self.sock = sock


class PinnedOpener:
    """The default :class:`Opener`: connects to the checked address itself, never to the name.

    ``ssl_context`` defaults to ``ssl.create_default_context()`` (system CAs,
    hostname checks on); tests may pass one that trusts their own certificate.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context

    def __call__(self, *, scheme: str, address: str, port: int, host: str, timeout: float) -> Connection:
        return _PinnedConnection(
            address,
            port,
            timeout=timeout,
            tls_host=host if scheme == "https" else None,
            context=self.ssl_context,
        )


# --------------------------------------------------------------------------- fetch


class _Target:
    __slots__ = ("scheme", "host", "ascii_host", "port", "path", "host_header")

    def __init__(self, url: str, name: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InputRefused(f"{name}: the URL is malformed", param=name) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InputRefused(
                f"{name}: URL scheme '{scheme or 'none'}' is not allowed (use https, http or a data: URI)",
                param=name,
            )
        if parts.username is not None or parts.password is not None:
            raise InputRefused(f"{name}: URLs with credentials are not allowed", param=name)
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise InputRefused(f"{name}: the URL has no host", param=name)
        try:
            ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InputRefused(f"{name}: the URL's host name is invalid", param=name) from None
        self.scheme = scheme
        self.host = host.lower()
        self.ascii_host = ascii_host.lower()
        self.port = port or (443 if scheme == "https" else 80)
        path = parts.path or "/"
        self.path = path + (f"?{parts.query}" if parts.query else "")
        shown = f"[{self.ascii_host}]" if ":" in self.ascii_host else self.ascii_host
        default = 443 if scheme == "https" else 80
        self.host_header = shown if self.port == default else f"{shown}:{self.port}"


def _remaining(deadline: float, name: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InputRefused(f"{name}: fetching the image took too long", param=name)
    return left


def _pick_address(target: _Target, resolver: Resolver, name: str, allow_loopback: bool) -> str:
    host = target.ascii_host
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
        if not (allow_loopback and (host == "localhost" or host.endswith(".localhost"))):
            raise InputRefused(f"{name}: the host '{target.host}' is not allowed", param=name)
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [str(a) for a in resolver(host)]
        except (OSError, UnicodeError):
            raise InputRefused(
                f"{name}: the host '{target.host}' could not be resolved", param=name
            ) from None
        if not addresses:
            raise InputRefused(f"{name}: the host '{target.host}' could not be resolved", param=name)
    for address in addresses:
        reason = check_address(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise InputRefused(f"{name}: the URL's host resolves to {reason}; refused", param=name)
    chosen = ipaddress.ip_address(addresses[0].split("%", 1)[0])
    if isinstance(chosen, ipaddress.IPv6Address) and chosen.ipv4_mapped is not None:
        chosen = chosen.ipv4_mapped
    return str(chosen)


def _socket_of(conn: object) -> socket.socket | None:
    return getattr(conn, "pinned_sock", None) or getattr(conn, "sock", None)


def _set_timeout(conn: object, seconds: float) -> None:
    sock = _socket_of(conn)
    if sock is not None:
        try:
            sock.settimeout(seconds)
        except OSError:
            pass


def _abort(conn: object) -> None:
    """Watchdog: cut the connection at the deadline (a server dripping bytes cannot hold us)."""
    sock = _socket_of(conn)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _connect(
    open_connection: Opener, target: _Target, address: str, deadline: float, name: str
) -> tuple[Connection, threading.Timer]:
    """A connection to the checked address, and the watchdog that cuts it at the deadline (started)."""
    conn = open_connection(
        scheme=target.scheme,
        address=address,
        port=target.port,
        host=target.ascii_host,
        timeout=_remaining(deadline, name),
    )
    watchdog = threading.Timer(_remaining(deadline, name), _abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    return conn, watchdog


def fetch_image(
    url: str,
    *,
    name: str,
    max_bytes: int,
    timeout: float,
    resolver: Resolver | None = None,
    opener: Opener | None = None,
    allow_loopback: bool = False,
) -> InputImage:
    """Fetch (or decode) the image at ``url`` under the rules in the module docstring.

    ``name`` names the input in error messages and as ``param``. Raises
    :class:`~imagemint.errors.InputRefused` for every refusal and failure.
    """
    url = url.strip()
    if url[:5].lower() == "data:":
        return decode_base64_image(url, name=name, max_bytes=max_bytes)
    resolve = resolver or default_resolver
    open_connection: Opener = opener or PinnedOpener()
    deadline = time.monotonic() + timeout
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        target = _Target(current, name)
        address = _pick_address(target, resolve, name, allow_loopback)
        conn, watchdog = _connect(open_connection, target, address, deadline, name)
        try:
            headers = {
                "Host": target.host_header,
                "User-Agent": _USER_AGENT,
                "Accept": "image/png, image/jpeg, image/webp, image/gif",
                "Accept-Encoding": "identity",
                "Connection": "close",
            }
            try:
                conn.request("GET", target.path, headers=headers)
                response = conn.getresponse()
            except TimeoutError:
                raise InputRefused(f"{name}: fetching the image took too long", param=name) from None
            except ssl.SSLError:
                _remaining(deadline, name)
                raise InputRefused(
                    f"{name}: the TLS handshake with the image host failed", param=name
                ) from None
            except (OSError, http.client.HTTPException):
                _remaining(deadline, name)
                raise InputRefused(f"{name}: the image host could not be reached", param=name) from None
            status = response.status
            if status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise InputRefused(f"{name}: redirect without a Location header", param=name)
                if hop == MAX_REDIRECTS:
                    raise InputRefused(f"{name}: more than {MAX_REDIRECTS} redirects", param=name)
                current = urljoin(current, location.strip())
                continue
            if status != 200:
                raise InputRefused(f"{name}: the image host answered HTTP {status}", param=name)
            return _read_image(conn, response, name=name, max_bytes=max_bytes, deadline=deadline)
        finally:
            watchdog.cancel()
            conn.close()
    raise InputRefused(f"{name}: more than {MAX_REDIRECTS} redirects", param=name)  # pragma: no cover


def _read_image(
    conn: object, response: _Response, *, name: str, max_bytes: int, deadline: float
) -> InputImage:
    declared = _normalise_media_type(response.getheader("Content-Type"))
    if declared not in ALLOWED_MEDIA_TYPES:
        raise InputRefused(
            f"{name}: content type '{declared or 'missing'}' is not one of image/png, image/jpeg, "
            "image/webp, image/gif",
            param=name,
        )
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise InputRefused(f"{name}: compressed responses ({encoding}) are not accepted", param=name)
    length = response.getheader("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise InputRefused(f"{name}: the image is larger than {max_bytes} bytes", param=name)
    # read1: at most one socket read per call, so the deadline is checked between reads.
    read = getattr(response, "read1", None) or response.read
    chunks: list[bytes] = []
    total = 0
    while True:
        _set_timeout(conn, _remaining(deadline, name))
        try:
            chunk = read(_CHUNK)
        except TimeoutError:
            raise InputRefused(f"{name}: fetching the image took too long", param=name) from None
        except (OSError, http.client.HTTPException):
            _remaining(deadline, name)
            raise InputRefused(f"{name}: the image download was interrupted", param=name) from None
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise InputRefused(f"{name}: the image is larger than {max_bytes} bytes", param=name)
        chunks.append(chunk)
    _remaining(deadline, name)  # a watchdog abort looks like end of data: do not keep a cut-off body
    data = b"".join(chunks)
    sniffed = sniff_media_type(data)
    if sniffed is None:
        raise InputRefused(f"{name}: the body is not a PNG, JPEG, WebP or GIF image", param=name)
    if sniffed != declared:
        raise InputRefused(f"{name}: the host says {declared} but the data is {sniffed}", param=name)
    return InputImage(data=data, media_type=sniffed, name=name)


# --------------------------------------------------------------------------- webhooks


def check_url(url: str, *, name: str, resolver: Resolver | None = None, allow_loopback: bool = False) -> str:
    """Rules 1 and 2 for an http(s) URL, without connecting; the address a request would be pinned to."""
    target = _Target(url.strip(), name)
    return _pick_address(target, resolver or default_resolver, name, allow_loopback)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    name: str,
    timeout: float,
    resolver: Resolver | None = None,
    opener: Opener | None = None,
    allow_loopback: bool = False,
) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` under the address rules; return the status and the start of the answer.

    Redirects are not followed (the status is returned as it is). Refusals,
    unreachable hosts and timeouts raise :class:`~imagemint.errors.InputRefused`.
    """
    target = _Target(url.strip(), name)
    deadline = time.monotonic() + timeout
    address = _pick_address(target, resolver or default_resolver, name, allow_loopback)
    conn, watchdog = _connect(opener or PinnedOpener(), target, address, deadline, name)
    try:
        sent = {
            "Host": target.host_header,
            "Content-Length": str(len(body)),
            "Accept-Encoding": "identity",
            "Connection": "close",
            **headers,
        }
        try:
            conn.request("POST", target.path, body=body, headers=sent)
            response = conn.getresponse()
            answer = response.read(_CHUNK)
        except TimeoutError:
            raise InputRefused(f"{name}: the host did not answer in time", param=name) from None
        except ssl.SSLError:
            raise InputRefused(f"{name}: the TLS handshake with the host failed", param=name) from None
        except (OSError, http.client.HTTPException):
            _remaining(deadline, name)
            raise InputRefused(f"{name}: the host could not be reached", param=name) from None
        return response.status, answer or b""
    finally:
        watchdog.cancel()
        conn.close()
