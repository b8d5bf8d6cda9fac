"""Connections pinned to a checked address, one deadline, and redirects checked hop by hop.

Rules 3 to 5 of :mod:`.fetch`:

- **Pinning.** A connection goes to the address :func:`.policy.pick_address`
  checked, never to the name (no second DNS lookup, so DNS rebinding cannot
  swap the address between check and connect). The ``Host`` header and the
  TLS SNI / certificate check use the original name.
- **Deadline.** One deadline covers every hop: each connect gets the time
  left, and a watchdog shuts the socket at the deadline, so a server dripping
  bytes cannot hold the caller.
- **Redirects** (301, 302, 303, 307, 308) are followed by hand, at most
  :data:`MAX_REDIRECTS`, each hop's URL and address checked again.

``Opener`` is the seam: :class:`PinnedOpener` is the real one; unit tests
pass a fake that records what would have been opened.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urljoin

from imagemint.adapters.net.policy import Resolver, Target, pick_address
from imagemint.errors import InputRefused

__all__ = [
    "MAX_REDIRECTS",
    "Connection",
    "Opener",
    "PinnedOpener",
    "Response",
    "connect",
    "get_following_redirects",
    "remaining",
    "set_timeout",
]

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Response(Protocol):
    status: int

    def getheader(self, name: str, default: str | None = None) -> str | None: ...

    def read(self, amt: int | None = None) -> bytes: ...


class Connection(Protocol):
    """The part of :class:`http.client.HTTPConnection` the fetcher uses."""

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] = ...
    ) -> None: ...

    def getresponse(self) -> Response: ...

    def close(self) -> None: ...


class Opener(Protocol):
    """Opens a connection to an address that was already checked.

    ``address`` is the IP to connect to, ``host`` the name from the URL (for SNI
    and certificate checks), ``timeout`` the seconds left before the deadline.
    """

    def __call__(self, *, scheme: str, address: str, port: int, host: str, timeout: float) -> Connection: ...


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


def remaining(deadline: float, name: str) -> float:
    """Seconds left before ``deadline``; InputRefused (too long) when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise InputRefused(f"{name}: fetching the image took too long", param=name)
    return left


def _socket_of(conn: object) -> socket.socket | None:
    return getattr(conn, "pinned_sock", None) or getattr(conn, "sock", None)


def set_timeout(conn: object, seconds: float) -> None:
    """Shorten the socket timeout of ``conn`` (its next read ends by the deadline)."""
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


def connect(
    open_connection: Opener, target: Target, address: str, deadline: float, name: str
) -> tuple[Connection, threading.Timer]:
    """A connection to the checked address, and the watchdog that cuts it at the deadline (started)."""
    conn = open_connection(
        scheme=target.scheme,
        address=address,
        port=target.port,
        host=target.ascii_host,
        timeout=remaining(deadline, name),
    )
    watchdog = threading.Timer(remaining(deadline, name), _abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    return conn, watchdog


@contextmanager
def get_following_redirects(
    url: str,
    *,
    name: str,
    headers: Mapping[str, str],
    deadline: float,
    resolver: Resolver,
    opener: Opener,
    allow_loopback: bool,
) -> Iterator[tuple[Connection, Response]]:
    """GET ``url`` on its checked address, following redirects, each hop checked again.

    Yields the connection and the first answer that is not a redirect; the
    connection is closed and its watchdog stopped when the block ends.
    """
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        target = Target(current, name)
        address = pick_address(target, resolver, name, allow_loopback)
        conn, watchdog = connect(opener, target, address, deadline, name)
        try:
            try:
                conn.request("GET", target.path, headers={"Host": target.host_header, **headers})
                response = conn.getresponse()
            except TimeoutError:
                raise InputRefused(f"{name}: fetching the image took too long", param=name) from None
            except ssl.SSLError:
                remaining(deadline, name)
                raise InputRefused(
                    f"{name}: the TLS handshake with the image host failed", param=name
                ) from None
            except (OSError, http.client.HTTPException):
                remaining(deadline, name)
                raise InputRefused(f"{name}: the image host could not be reached", param=name) from None
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise InputRefused(f"{name}: redirect without a Location header", param=name)
                if hop == MAX_REDIRECTS:
                    raise InputRefused(f"{name}: more than {MAX_REDIRECTS} redirects", param=name)
                current = urljoin(current, location.strip())
                continue
            yield conn, response
            return
        finally:
            watchdog.cancel()
            conn.close()
    raise InputRefused(f"{name}: more than {MAX_REDIRECTS} redirects", param=name)  # pragma: no cover
