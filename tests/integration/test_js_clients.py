"""Real JavaScript clients against a real ``imagemint serve``: the Vercel AI SDK and the OpenAI Node SDK.

``tests/clients`` pins the clients in its ``package-lock.json`` (``make setup``
installs them) and holds their tests for Node's own test runner
(``*.test.mjs``). This test starts the local runtime on a free port with the
OpenAI protocol stub configured as the provider (``IMAGEMINT_OPENAI_API_KEY``,
``IMAGEMINT_OPENAI_BASE_URL``), runs ``node --test`` there with the base URL
and the dev account's key in the environment, and checks three things: the
runner passed, it ran exactly the tests the client files hold, and what the
stub received (the models asked for, never a ``response_format`` or ``style``,
the edit's two images and mask).

Its own module: one local runtime per process at a time (moto's state is
process-wide).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from stubs.openai_stub import OpenAIStub

from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
# The tests the client files hold, by name (node's TAP output names each one).
EXPECTED = {
    "generateImage with gpt-image-2 and n=2 returns two images",
    "generateImage edits a reference image (prompt.images + text)",
    "images.generate with gpt-image-2 at 1536x864",
    "images.edit with two images and a mask",
}
NODE_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(max_side=256) as s:
        yield s


@pytest.fixture(scope="module")
def runtime(stub: OpenAIStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    env = {"IMAGEMINT_OPENAI_API_KEY": "sk-stub", "IMAGEMINT_OPENAI_BASE_URL": stub.base_url + "/v1"}
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("js"), port=0, extra_env=env)
    yield rt
    rt.stop()


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node.js is needed for tests/clients (Node >= 20)"
    for package in ("ai", "@ai-sdk/openai", "openai"):
        assert (CLIENTS / "node_modules" / package / "package.json").is_file(), (
            f"{package} is not installed in tests/clients: run `make setup`"
        )
    return node


def _run_clients(rt: LocalRuntime) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "IMAGEMINT_BASE_URL": rt.base_url,
        "IMAGEMINT_API_KEY": rt.account["api_key"],
        "NO_COLOR": "1",
    }
    return subprocess.run(  # noqa: S603 (our own test files, our own runtime on 127.0.0.1)
        [_node(), "--test", "--test-reporter=tap"],
        cwd=CLIENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )


def _tap_counts(output: str) -> dict[str, int]:
    found = re.findall(r"^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$", output, re.M)
    return {name: int(count) for name, count in found}


def _tap_names(output: str, verdict: str) -> set[str]:
    return set(re.findall(rf"^\s*{verdict} \d+ - (.+?)(?: # .*)?$", output, re.M)) - {
        p.name for p in CLIENTS.glob("*.test.mjs")
    }


def test_the_ai_sdk_and_the_openai_node_sdk_pass_against_imagemint_serve(
    runtime: LocalRuntime, stub: OpenAIStub
) -> None:
    before = len(stub.requests)
    done = _run_clients(runtime)
    out = done.stdout + done.stderr
    counts = _tap_counts(done.stdout)
    failed = _tap_names(done.stdout, "not ok")
    assert done.returncode == 0 and counts.get("fail") == 0, f"failed: {sorted(failed)}\n{out[-6000:]}"
    assert counts.get("tests") == len(EXPECTED) and counts.get("pass") == len(EXPECTED), counts
    assert _tap_names(done.stdout, "ok") == EXPECTED
    assert counts.get("skipped", 0) == 0 and counts.get("todo", 0) == 0

    sent = stub.requests[before:]
    generations = [stub.params(r) for r in sent if r.route == "generations"]
    edits = [r for r in sent if r.route == "edits"]
    assert generations and edits, [r.route for r in sent]
    for params in generations + [stub.params(r) for r in edits]:
        assert "response_format" not in params and "style" not in params, params
        assert str(params.get("model", "")).startswith("gpt-image-2"), params
    assert any(p.get("size") == "1536x864" for p in generations), generations
    # The OpenAI SDK's edit: two images and a mask reached the provider.
    assert any(
        sum(f.field.startswith("image") for f in r.files) == 2 and any(f.field == "mask" for f in r.files)
        for r in edits
    ), [[f.field for f in r.files] for r in edits]
