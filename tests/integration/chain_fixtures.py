"""Fixtures for a real local EVM node: anvil from the npm package @foundry-rs/anvil.

``anvil`` (session scope) starts the node on 127.0.0.1 and a free port with
chain id 8453 (Base) and the contract-code-size limit lifted (the Zora 1155
impl is over EIP-170), waits until it answers ``eth_chainId``, funds a fresh
key with ``anvil_setBalance`` and yields an :class:`AnvilNode`. The node is
stopped at the end of the session.

When the binary is missing (``npm ci`` not run in tests/peers) the tests are
skipped, except under CI (``CI`` set and not false/0), where that is an error.

Import the fixtures in a test module (``from chain_fixtures import anvil``) or
from a conftest.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "tests" / "peers" / "node_modules"
CHAIN_ID = 8453
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class AnvilNode:
    rpc_url: str
    private_key: str  # a fresh key funded with 10,000 ETH
    chain_id: int
    pid: int


def anvil_binary() -> Path | None:
    """The native binary of the per-platform package, else the npm wrapper script."""
    for candidate in sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    wrapper = NODE_MODULES / ".bin" / "anvil"
    return wrapper if wrapper.exists() else None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # our own process group (start_new_session)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    binary = anvil_binary()
    if binary is None:
        message = "anvil is not installed: run `npm ci` in tests/peers (@foundry-rs/anvil)"
        if _in_ci():
            pytest.fail(message + " [CI is set: a missing peer is an error]")
        pytest.skip(message)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("anvil") / "anvil.log"
    args = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(CHAIN_ID),
        "--disable-code-size-limit",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"anvil exited with {process.returncode}: {log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if int(rpc(url, "eth_chainId", timeout=0.5), 16) == CHAIN_ID:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"anvil did not answer on {url} within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)

        from eth_account import Account

        funded = Account.create()
        rpc(url, "anvil_setBalance", [funded.address, hex(10_000 * 10**18)])
        yield AnvilNode(rpc_url=url, private_key=funded.key.hex(), chain_id=CHAIN_ID, pid=process.pid)
    finally:
        _stop(process)
