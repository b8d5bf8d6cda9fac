"""Which URLs and addresses the server may connect to (rules 1 and 2 of :mod:`.fetch`).

A URL must be ``http`` or ``https`` without credentials. Its host is resolved
once and *every* address it resolves to must be public: private, loopback,
link-local, multicast, reserved, unspecified, CGNAT (100.64.0.0/10),
site-local, the IPv4 ranges hidden inside IPv4-mapped (``::ffff:a.b.c.d``),
NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``) IPv6 addresses, and the
cloud metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200,
``metadata.google.internal`` and other metadata names) are refused. Numeric
host spellings such as ``2130706433`` or ``0x7f.1`` are read the way
``inet_aton`` reads them. ``allow_loopback`` admits 127.0.0.0/8, ::1 and
``localhost`` (local runs and integration tests); every other rule still holds.

:func:`pick_address` returns the one checked address a connection is then
pinned to (:mod:`.transport`), so a second DNS answer can never be used.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from imagemint.errors import InputRefused

__all__ = ["Resolver", "Target", "check_address", "default_resolver", "pick_address"]

#: Every address a host name resolves to, as strings (injectable: tests pass a table).
Resolver = Callable[[str], list[str]]

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
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")


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


class Target:
    """An ``http(s)`` URL taken apart (scheme, host, port, path, Host header); InputRefused otherwise."""

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


def pick_address(target: Target, resolver: Resolver, name: str, allow_loopback: bool) -> str:
    """The address to connect to for ``target``: every address of its host checked, the first one kept."""
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
