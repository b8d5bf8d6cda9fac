"""Unit tests run with the network off: a socket connect or send, or a DNS lookup of a name, fails.

A test that really needs its own server on 127.0.0.1 says so with
``@pytest.mark.loopback_sockets``: loopback connects are then allowed, nothing else.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "loopback_sockets: allow socket connects to 127.0.0.1 / ::1 only")


class NetworkUse(AssertionError):
    """A unit test tried to use the network."""


def _is_loopback(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_literal(host: object) -> bool:
    """An IP address literal: getaddrinfo answers it without a DNS query."""
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_ok = request.node.get_closest_marker("loopback_sockets") is not None
    real = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex", "sendto")}
    real_getaddrinfo = socket.getaddrinfo

    def _check(address: object) -> None:
        if not (loopback_ok and _is_loopback(address)):
            raise NetworkUse(f"unit test tried to open a connection to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        _check(address)
        real["connect"](self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        _check(address)
        return real["connect_ex"](self, address)

    def sendto(self: socket.socket, data: bytes, *args: object) -> int:
        _check(args[-1])
        return real["sendto"](self, data, *args)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not (_is_literal(host) or (loopback_ok and host == "localhost")):
            raise NetworkUse(f"unit test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
