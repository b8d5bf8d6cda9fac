"""Issue 12 against ``imagemint serve``: the fuzz corpus over real HTTP, after a real mint.

The server mints in-process (embedded chain: web3 imports py_ecc, which raises the
process's recursion limit to 100,000), so a keyless legacy call comes first; then every
case of ``tests/fuzz/corpus`` is sent as raw HTTP (exact method, path, headers and body,
so TRACE, a 70 KB URL and a 64 KB header reach the front as a client would send them).
Every answer must be below 500, in its dialect's shape (or API Gateway's ``{"message"}``
for what the front answers itself), with ``nosniff``; the server must still answer after.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from fuzz import replay
from test_local_runtime import call, served  # noqa: F401  the module's own ``imagemint serve``

pytestmark = pytest.mark.integration


def send(base: str, case: replay.Case) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    target = case.path + ("?" + urlencode(case.query) if case.query else "")
    try:
        conn.putrequest(case.method, target, skip_accept_encoding=True)
        for name, value in case.headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(case.body)))
        conn.endheaders(case.body or None)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def minted(served):  # noqa: F811
    """The keyless legacy call that mints: from here on py_ecc has raised the recursion limit."""
    query = urlencode({"prompt": "a koi in neon", "account_id": served["account_id"]})
    status, headers, body = call(served["base_url"], "GET", f"/api/image/generate?{query}")
    assert status == 200, body[:300]
    assert json.loads(body)["moment"]["tokenId"], "the legacy call minted"
    assert headers["X-Content-Type-Options"] == "nosniff"
    return served


@pytest.mark.parametrize("case_file", replay.cases(), ids=lambda p: p.stem)
def test_the_fuzz_corpus_against_imagemint_serve(case_file: Path, minted) -> None:
    case = replay.load(case_file, key=minted["api_key"], account_id=minted["account_id"])
    status, headers, body = send(minted["base_url"], case)
    assert replay.problems(case, status, headers, body) == []


def test_the_server_is_alive_after_the_corpus(minted) -> None:
    """Runs after the corpus (file order): the process survived every case and still generates."""
    status, headers, body = call(minted["base_url"], "GET", "/api/content/templates")
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = call(
        minted["base_url"],
        "POST",
        "/v1/images/generations",
        {"prompt": "x", "model": "gpt-image-2"},
        {"Authorization": f"Bearer {minted['api_key']}"},
    )
    assert status == 200, body[:300]


def test_a_chunked_body_gets_411_in_the_gateway_shape(minted) -> None:
    parts = urlsplit(minted["base_url"])
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411 ")
    assert b"X-Content-Type-Options: nosniff" in head
    assert json.loads(body) == {"message": "Length Required"}
