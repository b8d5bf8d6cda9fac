"""Server-side fetch of reference / edit images and webhook posts, guarded against SSRF.

Clients name reference images by URL; this module is the only place that
fetches them. Everything it refuses raises :class:`~imagemint.errors.InputRefused`
with ``param`` set to the input's name and a message that says why.

Rules, applied to the first URL and again to every redirect hop:

1. **Schemes.** ``data:`` (base64, ``image/png|jpeg|webp|gif``) is decoded in
   place; ``http`` and ``https`` are fetched; anything else is refused. URLs
   carrying credentials (``user:pass@``) are refused.
2. **Addresses.** The host is resolved once (``resolver``) and *every* address
   it resolves to must be public; cloud metadata names and addresses are
   refused (:mod:`.policy` lists every range).
3. **Pinning.** The connection goes to the address that was checked, never to
   the name; ``Host`` and TLS SNI use the original name (:mod:`.transport`).
4. **Redirects** (301, 302, 303, 307, 308) are followed by hand, at most
   :data:`MAX_REDIRECTS`, each hop checked as above (:mod:`.transport`).
5. **Limits.** One deadline (``timeout`` seconds) covers resolution of every hop,
   connects, redirects and the body. The body is streamed and the fetch aborted
   as soon as it passes ``max_bytes`` (a larger ``Content-Length`` is refused
   before reading). ``Accept-Encoding: identity`` is asked for and any other
   encoding refused, so nothing is decompressed.
6. **Type.** ``Content-Type`` must be ``image/png``, ``image/jpeg``,
   ``image/webp`` or ``image/gif``, and the magic bytes of the body must agree
   (:mod:`.sniff`).
7. **Bounds.** Pixels, sides and frames are read from the header and checked
   (:func:`check_image`, :func:`.sniff.bounds_problem`) before anything decodes
   the image: a decompression bomb is refused from its first bytes. The same
   check runs on base64 / data URI inputs and multipart uploads.

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

The image helpers the providers use, :func:`sniff_media_type` and
:func:`image_dimensions`, live in :mod:`.sniff` and are re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ssl
import time
from collections.abc import Mapping

from imagemint.adapters.net.policy import Resolver, Target, check_address, default_resolver, pick_address
from imagemint.adapters.net.sniff import (
    ALLOWED_MEDIA_TYPES,
    bounds_problem,
    image_dimensions,
    image_info,
    normalise_media_type,
    sniff_media_type,
)
from imagemint.adapters.net.transport import (
    MAX_REDIRECTS,
    Connection,
    Opener,
    PinnedOpener,
    Response,
    connect,
    get_following_redirects,
    remaining,
    set_timeout,
)
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
    "check_image",
    "check_url",
    "decode_base64_image",
    "default_resolver",
    "fetch_image",
    "image_dimensions",
    "post",
    "sniff_media_type",
]

_CHUNK = 64 * 1024
_USER_AGENT = "imagemint-fetch/1"


# --------------------------------------------------------------------------- bounds


def _quoted(value: str, limit: int = 40) -> str:
    """A media type someone else sent, safe to quote: at most ``limit`` characters, markup replaced."""
    short = "".join(c if c.isalnum() or c in "/+.-_ ;=" else "?" for c in value[:limit])
    return short + ("…" if len(value) > limit else "")


def check_image(data: bytes, *, name: str) -> InputImage:
    """``data`` as a checked :class:`InputImage`: a PNG, JPEG, WebP or GIF within the header bounds."""
    sniffed = sniff_media_type(data)
    if sniffed is None:
        raise InputRefused(f"{name}: the data is not a PNG, JPEG, WebP or GIF image", param=name)
    problem = bounds_problem(image_info(data))
    if problem is not None:
        raise InputRefused(f"{name}: the image is refused because {problem}", param=name)
    return InputImage(data=data, media_type=sniffed, name=name)


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
        declared = normalise_media_type(parts[0])
        if "base64" not in (p.lower() for p in parts[1:]):
            raise InputRefused(f"{name}: data URIs must be base64-encoded", param=name)
        if declared not in ALLOWED_MEDIA_TYPES:
            raise InputRefused(
                f"{name}: data URI type '{_quoted(parts[0]) or 'missing'}' is not one of image/png, "
                "image/jpeg, image/webp, image/gif",
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
    image = check_image(data, name=name)
    if declared is not None and declared != image.media_type:
        raise InputRefused(
            f"{name}: the data URI says {declared} but the data is {image.media_type}", param=name
        )
    return image


# --------------------------------------------------------------------------- fetch


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
    deadline = time.monotonic() + timeout
    headers = {
        "User-Agent": _USER_AGENT,
        "Accept": "image/png, image/jpeg, image/webp, image/gif",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    with get_following_redirects(
        url,
        name=name,
        headers=headers,
        deadline=deadline,
        resolver=resolver or default_resolver,
        opener=opener or PinnedOpener(),
        allow_loopback=allow_loopback,
    ) as (conn, response):
        if response.status != 200:
            raise InputRefused(f"{name}: the image host answered HTTP {response.status}", param=name)
        return _read_image(conn, response, name=name, max_bytes=max_bytes, deadline=deadline)


def _read_image(
    conn: object, response: Response, *, name: str, max_bytes: int, deadline: float
) -> InputImage:
    declared = normalise_media_type(response.getheader("Content-Type"))
    if declared not in ALLOWED_MEDIA_TYPES:
        raise InputRefused(
            f"{name}: content type '{_quoted(declared) or 'missing'}' is not one of image/png, image/jpeg, "
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
        set_timeout(conn, remaining(deadline, name))
        try:
            chunk = read(_CHUNK)
        except TimeoutError:
            raise InputRefused(f"{name}: fetching the image took too long", param=name) from None
        except (OSError, http.client.HTTPException):
            remaining(deadline, name)
            raise InputRefused(f"{name}: the image download was interrupted", param=name) from None
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise InputRefused(f"{name}: the image is larger than {max_bytes} bytes", param=name)
        chunks.append(chunk)
    remaining(deadline, name)  # a watchdog abort looks like end of data: do not keep a cut-off body
    data = b"".join(chunks)
    sniffed = sniff_media_type(data)
    if sniffed is None:
        raise InputRefused(f"{name}: the body is not a PNG, JPEG, WebP or GIF image", param=name)
    if sniffed != declared:
        raise InputRefused(f"{name}: the host says {declared} but the data is {sniffed}", param=name)
    return check_image(data, name=name)


# --------------------------------------------------------------------------- webhooks


def check_url(url: str, *, name: str, resolver: Resolver | None = None, allow_loopback: bool = False) -> str:
    """Rules 1 and 2 for an http(s) URL, without connecting; the address a request would be pinned to."""
    target = Target(url.strip(), name)
    return pick_address(target, resolver or default_resolver, name, allow_loopback)


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
    target = Target(url.strip(), name)
    deadline = time.monotonic() + timeout
    address = pick_address(target, resolver or default_resolver, name, allow_loopback)
    conn, watchdog = connect(opener or PinnedOpener(), target, address, deadline, name)
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
            remaining(deadline, name)
            raise InputRefused(f"{name}: the host could not be reached", param=name) from None
        return response.status, answer or b""
    finally:
        watchdog.cancel()
        conn.close()
