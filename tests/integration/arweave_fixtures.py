"""Pytest fixtures for the Arweave integration tests: a real ArLocal gateway on 127.0.0.1.

Use them from a test module with::

    from arweave_fixtures import arlocal  # noqa: F401  (a fixture)

``arlocal`` (session scope) starts ``tests/peers/arlocal.js`` on a free
loopback port (the wrapper binds port 0 and prints the one it got), waits
until ``/info`` answers, yields the base URL and stops the process at the
end of the session. When ``tests/peers/node_modules/arlocal`` is missing
the tests are skipped, unless the ``CI`` environment variable is set: then a
missing peer fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PEERS_DIR = Path(__file__).resolve().parents[1] / "peers"
WRAPPER = PEERS_DIR / "arlocal.js"
ARLOCAL_PACKAGE = PEERS_DIR / "node_modules" / "arlocal"
READY_PREFIX = "ARLOCAL_READY "
STARTUP_TIMEOUT_S = 60.0

#: Seconds from spawning the wrapper to the first good ``/info`` answer (set by the fixture).
startup_seconds: float | None = None


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def http_get(base_url: str, path: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """GET ``base_url + path``: (status, content type, body); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(base_url + path, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def mint(base_url: str, address: str, winston: int) -> None:
    """Fund ``address`` on ArLocal."""
    status, _, body = http_get(base_url, f"/mint/{address}/{winston}")
    assert status == 200, (status, body)


def mine(base_url: str) -> None:
    """Mine the pending transactions on ArLocal."""
    status, _, body = http_get(base_url, "/mine")
    assert status == 200, (status, body)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdin:
        proc.stdin.close()


@pytest.fixture(scope="session")
def arlocal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    global startup_seconds
    if not ARLOCAL_PACKAGE.is_dir():
        reason = "ArLocal is not installed: run `npm install` in tests/peers"
        if running_in_ci():
            pytest.fail(f"{reason} (CI is set, so a missing peer is an error)")
        pytest.skip(reason)
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the ArLocal peer needs Node 20")

    logs = tmp_path_factory.mktemp("arlocal")
    out_path, err_path = logs / "stdout.log", logs / "stderr.log"
    started = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(  # the wrapper binds 127.0.0.1 only
            [node, str(WRAPPER), "0", "--watch-stdin"],
            cwd=PEERS_DIR,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
    try:
        base_url = ""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not base_url:
            for line in _read(out_path).splitlines():
                if line.startswith(READY_PREFIX):
                    base_url = line[len(READY_PREFIX) :].strip()
            if base_url:
                break
            if proc.poll() is not None:
                pytest.fail(f"ArLocal exited with {proc.returncode}: {_read(err_path)[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"ArLocal not ready within {STARTUP_TIMEOUT_S:g} s: {_read(err_path)[-2000:]}")
            time.sleep(0.05)
        assert base_url.startswith("http://127.0.0.1:"), base_url
        while True:
            try:
                if http_get(base_url, "/info", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ArLocal at {base_url} does not answer /info")
            time.sleep(0.05)
        startup_seconds = time.perf_counter() - started
        yield base_url
    finally:
        _stop(proc)
