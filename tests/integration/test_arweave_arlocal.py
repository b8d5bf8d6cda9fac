"""GatewayArchiveStore against a real ArLocal gateway (tests/peers/arlocal.js on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import pytest
from arweave_fixtures import arlocal, http_get, mine, mint  # noqa: F401  (arlocal is a fixture)

from imagemint.adapters.arweave.gateway_store import GatewayArchiveStore, GatewayResponse, urllib_transport
from imagemint.adapters.arweave.store import ArchiveError, ar_uri
from imagemint.adapters.arweave.tx import TX_ID_RE
from imagemint.adapters.arweave.wallet import b64url_decode, b64url_encode, generate_wallet, wallet_address
from imagemint.errors import NotFound

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2 * 1024 * 1024 - 8)  # 8 chunks of 256 KiB
FUNDS = 10**14  # winston; ArLocal charges ~65.6 M winston per kB


@pytest.fixture(scope="module")
def funded(arlocal: str) -> dict[str, str]:  # noqa: F811
    jwk = generate_wallet()
    mint(arlocal, wallet_address(jwk), FUNDS)
    return jwk


@pytest.fixture(scope="module")
def unfunded() -> dict[str, str]:
    return generate_wallet()


def make_store(jwk: dict[str, str], url: str, **kw: Any) -> GatewayArchiveStore:
    opts: dict[str, Any] = {"confirm_timeout_s": 5.0, "poll_interval_s": 0.05, "max_attempts": 3}
    opts.update(kw)
    return GatewayArchiveStore(jwk, url, **opts)


class Spy:
    """A transport that records every request; ``fault(method, path, n_posts)`` may answer for the gateway."""

    def __init__(self, gateway: str, fault: Any = None) -> None:
        self.gateway = gateway
        self.fault = fault
        self.calls: list[tuple[str, str]] = []

    def __call__(
        self, method: str, url: str, body: bytes | None, headers: Any, timeout: float
    ) -> GatewayResponse:
        path = url.removeprefix(self.gateway)
        self.calls.append((method, path))
        if self.fault is not None:
            posts = sum(1 for c in self.calls if c == ("POST", "/tx"))
            answer = self.fault(method, path, posts)
            if answer is not None:
                return answer
        return urllib_transport(method, url, body, headers, timeout)


def spied_store(
    jwk: dict[str, str], url: str, fault: Any = None, **kw: Any
) -> tuple[GatewayArchiveStore, list[tuple[str, str]]]:
    """A store whose every request goes through a :class:`Spy`: the store and the spy's calls."""
    spy = Spy(url, fault)
    return make_store(jwk, url, transport=spy, **kw), spy.calls


def test_multichunk_png_and_json_round_trip(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    store, calls = spied_store(funded, arlocal)
    tags = [("Content-Type", "image/png"), ("App-Name", "imagemint"), ("Prompt", "eine Brücke ✓ 画像")]

    started = time.perf_counter()
    rec = store.archive(PNG, tags)
    upload_s = time.perf_counter() - started
    print(f"\n2 MiB upload to ArLocal: {upload_s:.3f} s")

    assert TX_ID_RE.match(rec.id)
    assert rec.id == b64url_encode(hashlib.sha256(b64url_decode(rec.signature)).digest())
    assert rec.data_size == str(len(PNG)) and int(rec.reward) > 0
    assert [(t.name, t.value) for t in rec.tags] == tags
    assert calls.count(("POST", "/tx")) == 1
    assert calls.count(("POST", "/chunk")) == 8  # header first, then every chunk

    meta = json.dumps({"name": "eine Brücke", "image": ar_uri(rec.id)}).encode()
    rec_json = store.archive(meta, [("Content-Type", "application/json")])
    assert calls.count(("POST", "/chunk")) == 8  # small data goes inline

    assert store.status(rec.id)["state"] == "pending"
    mine(arlocal)
    status = store.status(rec.id)
    assert status["state"] == "confirmed" and status["block_height"] >= 1
    code, _, body = http_get(arlocal, f"/tx/{rec.id}/status")
    assert code == 200 and "block_indep_hash" in json.loads(body)

    assert store.read(rec.id) == (PNG, "image/png")
    assert store.read(rec_json.id) == (meta, "application/json")
    code, content_type, body = http_get(arlocal, f"/{rec.id}")
    assert (code, body) == (200, PNG) and content_type.startswith("image/png")
    code, content_type, body = http_get(arlocal, f"/{rec_json.id}")
    assert (code, body) == (200, meta) and content_type.startswith("application/json")
    assert store.gateway_url(rec.id) == f"{arlocal}/{rec.id}"

    code, _, body = http_get(arlocal, f"/tx/{rec.id}")
    header = json.loads(body)
    assert (header["data_root"], header["signature"]) == (rec.data_root, rec.signature)


def test_unfunded_wallet_raises_and_nothing_is_stored(arlocal: str, unfunded: dict[str, str]) -> None:  # noqa: F811
    store = make_store(unfunded, arlocal)
    for payload in (b'{"small": true}', os.urandom(600 * 1024)):  # inline, then chunked
        with pytest.raises(ArchiveError) as info:
            store.archive(payload, [("Content-Type", "application/octet-stream")])
        err = info.value
        assert err.details["reason"] == "rejected" and err.details["http_status"] == 410
        assert http_get(arlocal, f"/tx/{err.details['tx_id']}/status")[0] == 404
        assert err.status == 502 and err.code == "archive_failed"


def test_a_dropped_tx_is_posted_again(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def drop_first(method: str, path: str, posts: int) -> GatewayResponse | None:
        # The gateway says OK to the first post but never keeps the transaction.
        if (method, path) == ("POST", "/tx") and posts == 1:
            return GatewayResponse(200, {}, b"OK")
        return None

    store, calls = spied_store(funded, arlocal, drop_first, confirm_timeout_s=0.3)
    rec = store.archive(b"kept on the second try", [("Content-Type", "text/plain")])
    assert calls.count(("POST", "/tx")) == 2
    assert store.read(rec.id) == (b"kept on the second try", "text/plain")


def test_a_tx_dropped_every_time_raises_after_max_attempts(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def drop_all(method: str, path: str, posts: int) -> GatewayResponse | None:
        if (method, path) == ("POST", "/tx"):
            return GatewayResponse(200, {}, b"OK")
        return None

    store, calls = spied_store(funded, arlocal, drop_all, confirm_timeout_s=0.2, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(ArchiveError) as info:
        store.archive(b"never kept", [("Content-Type", "text/plain")])
    assert info.value.details["reason"] == "dropped"
    assert calls.count(("POST", "/tx")) == 3
    assert time.monotonic() - started < 5


def test_a_failing_chunk_endpoint_is_bounded(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def chunks_fail(method: str, path: str, posts: int) -> GatewayResponse | None:
        if (method, path) == ("POST", "/chunk"):
            return GatewayResponse(503, {}, b"busy")
        return None

    store, calls = spied_store(funded, arlocal, chunks_fail, max_attempts=2)
    with pytest.raises(ArchiveError) as info:
        store.archive(os.urandom(300 * 1024), [("Content-Type", "application/octet-stream")])
    assert info.value.details["reason"] == "chunk_failed"
    assert calls.count(("POST", "/chunk")) == 2  # two tries of the first chunk, then stop


def test_retryable_post_errors_are_retried(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def busy_once(method: str, path: str, posts: int) -> GatewayResponse | None:
        if (method, path) == ("POST", "/tx") and posts == 1:
            return GatewayResponse(503, {}, b"busy")
        return None

    store, calls = spied_store(funded, arlocal, busy_once)
    rec = store.archive(b"after a 503", [("Content-Type", "text/plain")])
    assert calls.count(("POST", "/tx")) == 2
    assert store.read(rec.id)[0] == b"after a 503"


def test_read_of_unknown_id_is_not_found(arlocal: str, funded: dict[str, str]) -> None:  # noqa: F811
    store = make_store(funded, arlocal)
    with pytest.raises(NotFound):
        store.read("A" * 43)
    assert store.status("A" * 43) == {"state": "not_found"}


def test_non_ascii_and_empty_tag_values(arlocal: str, funded: dict[str, str]) -> None:  # noqa: F811
    store = make_store(funded, arlocal)
    rec = store.archive(b"tagged", [("Content-Type", "text/plain; charset=utf-8"), ("Títle", "ünïcödé 画像")])
    assert [(t.name, t.value) for t in rec.tags][1] == ("Títle", "ünïcödé 画像")
    assert store.read(rec.id) == (b"tagged", "text/plain; charset=utf-8")
    with pytest.raises(ArchiveError) as info:
        store.archive(b"x", [("Content-Type", "")])
    assert info.value.details["reason"] == "invalid_tags"


def test_unreachable_gateway_fails_fast(unfunded: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = make_store(unfunded, f"http://127.0.0.1:{port}", http_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ArchiveError) as info:
        store.archive(b"x", [("Content-Type", "text/plain")])
    assert info.value.details["reason"] == "unreachable"
    assert time.monotonic() - started < 5


def test_the_library_points_at_the_configured_gateway(arlocal: str, funded: dict[str, str]) -> None:  # noqa: F811
    from arweave import arweave_lib

    store = make_store(funded, arlocal)
    assert arweave_lib.API_URL == arlocal
    assert store._lib_wallet.api_url == arlocal
    assert store._lib_wallet.address == wallet_address(funded) == store.address


def test_a_tx_that_shows_up_late_is_not_reported_as_failed(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def slow_index(method: str, path: str, posts: int) -> GatewayResponse | None:
        # The first post is stored, but the gateway reports it only after we posted again
        # (ArLocal then refuses the duplicate).
        if method == "GET" and path.endswith("/status") and posts < 2:
            return GatewayResponse(404, {}, b"Not Found")
        return None

    store, calls = spied_store(funded, arlocal, slow_index, confirm_timeout_s=0.2)
    rec = store.archive(b"late but kept", [("Content-Type", "text/plain")])
    assert calls.count(("POST", "/tx")) == 2
    assert store.read(rec.id) == (b"late but kept", "text/plain")


def test_a_gateway_busy_on_every_post_gives_up_after_max_attempts(
    arlocal: str,  # noqa: F811
    funded: dict[str, str],
) -> None:
    def always_busy(method: str, path: str, posts: int) -> GatewayResponse | None:
        if (method, path) == ("POST", "/tx"):
            return GatewayResponse(503, {}, b"busy")
        return None

    store, calls = spied_store(funded, arlocal, always_busy, max_attempts=3)
    with pytest.raises(ArchiveError) as info:
        store.archive(b"never posted", [("Content-Type", "text/plain")])
    assert info.value.details["reason"] == "unreachable"
    assert calls.count(("POST", "/tx")) == 3
