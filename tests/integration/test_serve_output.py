"""What ``imagemint serve`` prints: one line per request and our own warnings, nothing else; the Step
Functions interpreter's internals, moto and the functions' JSON logs go to ``<state dir>/debug.log``.

The runtime is started as ``imagemint serve`` starts it (``start(console=...)``), in this process, with
the console written to a buffer; the process's own stdout and stderr must stay empty. The openai
provider is a fixed in-process image (the ``register_provider`` seam), so no key lookup warns.
Its own module: one local runtime per process at a time.
"""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from events import png
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.wiring import register_provider
from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IMAGEMINT = str(Path(sys.executable).with_name("imagemint"))


class FixedProvider:
    name = "fixed"

    def generate(self, call: ProviderCall) -> ProviderResult:
        image = ProviderImage(png(16, 16), "image/png", call.width, call.height)
        return ProviderResult(images=[image] * call.n, model=call.provider_model)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRuntime, io.StringIO]]:
    console = io.StringIO()
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("serve"), port=0, console=console)
    try:
        yield rt, console
    finally:
        rt.stop()


@pytest.fixture
def runtime(served: tuple[LocalRuntime, io.StringIO]) -> Iterator[tuple[LocalRuntime, io.StringIO]]:
    """The served runtime with a fixed openai provider and an empty console."""
    rt, console = served
    register_provider("openai", FixedProvider())
    console.seek(0)
    console.truncate()
    yield rt, console
    register_provider("openai", None)


def call(rt: LocalRuntime, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 runtime
        rt.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {rt.account['api_key']}"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - our own 127.0.0.1 runtime
        return r.status, r.read()


def jobs_of(rt: LocalRuntime) -> list[str]:
    table = rt.stack.names["JobsTable"]
    return [item["job_id"]["S"] for item in rt.stack.client("dynamodb").scan(TableName=table)["Items"]]


def test_one_line_per_request_and_everything_else_in_the_debug_log(
    runtime: tuple[LocalRuntime, io.StringIO], capfd: pytest.CaptureFixture[str]
) -> None:
    rt, console = runtime
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "response_format": "b64_json"}
    status, answer = call(rt, "POST", "/v1/images/generations", body)  # runs the state machine
    assert status == 200 and json.loads(answer)["data"][0]["b64_json"]
    (job_id,) = jobs_of(rt)
    assert call(rt, "GET", f"/api/jobs/{job_id}")[0] == 200

    lines = console.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"POST /v1/images/generations 200 \d+ ms job {job_id}", lines[0]), lines
    assert re.fullmatch(rf"GET /api/jobs/{job_id} 200 \d+ ms job {job_id}", lines[1]), lines
    assert capfd.readouterr() == ("", "")  # nothing around the console (no lastResort, no prints)

    assert rt.debug_log is not None
    debug = rt.debug_log.read_text(encoding="utf-8").splitlines()
    assert any("NoSuchJsonPathError" in line and " moto.stepfunctions." in line for line in debug)
    logged = [json.loads(line) for line in debug if line.startswith("{")]
    accepted = [r for r in logged if r["message"] == "job accepted"]
    assert [r["job_id"] for r in accepted] == [job_id] and accepted[0]["service"] == "imagemint"
    assert {r.get("job_id") for r in logged if r["message"] == "generated"} == {job_id}
    assert all(any(line.endswith(want) for line in debug) for want in lines)  # the request lines too


def test_our_warnings_and_errors_are_one_line_each(
    runtime: tuple[LocalRuntime, io.StringIO], capfd: pytest.CaptureFixture[str]
) -> None:
    from imagemint.observability import logger

    rt, console = runtime
    logger.info("not shown", extra={"job_id": "j-1"})
    logger.warning("webhook not delivered", extra={"job_id": "j-1", "attempts": 2, "error": "HTTP 500\nbody"})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("ingest failed", extra={"key": "ingest/a/b.png"})
    logging.getLogger("imagemint_dev.local").warning("a function returned more than 6 MB")
    logging.getLogger("moto").error("an interpreter internal")

    assert console.getvalue().splitlines() == [
        "warning: webhook not delivered job_id=j-1 attempts=2 error=HTTP 500 body",
        "error: ingest failed key=ingest/a/b.png (ValueError: boom second line)",
        "warning: a function returned more than 6 MB",
    ]
    assert capfd.readouterr() == ("", "")
    assert rt.debug_log is not None
    debug = rt.debug_log.read_text(encoding="utf-8")
    assert '"message":"not shown"' in debug and "an interpreter internal" in debug
    assert "Traceback (most recent call last)" in debug  # the full story stays in the file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_cli_prints_its_banner_then_one_line_per_request(tmp_path: Path) -> None:
    """``imagemint serve`` as a user runs it: banner on stdout, request lines and our warnings on stderr."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [IMAGEMINT, "serve", "--port", str(port), "--state-dir", str(tmp_path), "--no-demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "runtime.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "imagemint serve did not start"
            time.sleep(0.1)
        key = json.loads((tmp_path / "dev-account.json").read_text())["api_key"]
        body = {"model": "gpt-image-1", "prompt": "a lighthouse", "response_format": "url"}
        req = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 runtime
            f"{base}/v1/images/generations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - our own 127.0.0.1 runtime
            url = json.loads(r.read())["data"][0]["url"]
        job_id = re.search(r"/images/([0-9a-f-]{36})/", url).group(1)  # type: ignore[union-attr]
        req = urllib.request.Request(f"{base}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})  # noqa: S310
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - our own 127.0.0.1 runtime
            assert json.loads(r.read())["status"] == "SUCCEEDED"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)

    assert proc.returncode == 0, err
    assert f"debug log:  {tmp_path / 'debug.log'}" in out.splitlines()
    lines = err.splitlines()
    ours = [line for line in lines if line.startswith("warning: ")]  # our own warnings: one short line each
    assert all(len(line) <= 240 for line in ours), ours
    rest = [line for line in lines if not line.startswith("warning: ")]
    expected = [
        r"imagemint: starting the local runtime \(moto \+ in-process functions\) \.\.\.",
        r"imagemint: ready in [0-9.]+ s",
        rf"POST /v1/images/generations 200 \d+ ms job {job_id}",
        rf"GET /api/jobs/{job_id} 200 \d+ ms job {job_id}",
        r"imagemint: stopping",
    ]
    assert len(rest) == len(expected) and all(
        re.fullmatch(p, s) for p, s in zip(expected, rest, strict=True)
    ), err
    debug = (tmp_path / "debug.log").read_text(encoding="utf-8")
    assert "NoSuchJsonPathError" in debug and '"message":"job accepted"' in debug
