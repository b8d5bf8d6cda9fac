"""Least privilege, checked on its own: a legacy request, an OpenAI-dialect request, a jobs GET and an
ingested object through one local runtime; every AWS operation each function performed is granted by
that function's policies in the translated template (``imagemint_dev.local.iam``).

The whole integration suite is checked the same way at the end of the session (``conftest.py``).
Its own module: one local runtime per process at a time (moto's state is process-wide).
"""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagemint.domain import auth
from imagemint.wiring import get_deps
from imagemint_dev.local import iam
from imagemint_dev.local.runtime import LocalRuntime, start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start(root=ROOT, state_dir=tmp_path_factory.mktemp("iam"), port=0) as runtime:
        yield runtime


def http(
    rt: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(
        rt.base_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
    )
    with urllib.request.urlopen(req, timeout=120) as r:  # our own 127.0.0.1 runtime
        return r.status, json.loads(r.read())


def ingest(rt: LocalRuntime, account_id: str) -> dict[str, Any]:
    s3 = rt.stack.client("s3")
    bucket = rt.stack.env["IMAGEMINT_BUCKET"]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buf, "PNG")
    s3.put_object(Bucket=bucket, Key=f"ingest/{account_id}/iam.png", Body=buf.getvalue())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return json.loads(
                s3.get_object(Bucket=bucket, Key=f"results/{account_id}/iam.png.json")["Body"].read()
            )
        except s3.exceptions.NoSuchKey:
            time.sleep(0.1)
    pytest.fail("the ingested object produced no result")


def any_job_id(rt: LocalRuntime) -> str:
    items = rt.stack.client("dynamodb").scan(TableName=rt.stack.env["IMAGEMINT_JOBS_TABLE"])["Items"]
    assert items, "no job was recorded"
    return str(items[0]["job_id"]["S"])


def test_each_function_does_only_what_its_policies_grant(rt: LocalRuntime) -> None:
    account_id, key = rt.account["account_id"], rt.account["api_key"]
    with iam.capture() as calls:
        status, _ = http(rt, "GET", f"/api/image/generate?prompt=heron&account_id={account_id}")
        assert status == 200
        status, _ = http(
            rt, "POST", "/v1/images/generations", {"prompt": "a heron", "model": "gpt-image-1"}, key
        )
        assert status == 200
        # A key never used before: the jobs function writes its first use (the grant the template lacked).
        deps = get_deps()
        fresh = auth.issue_key(deps.accounts, deps.settings, account_id)
        status, job = http(rt, "GET", f"/api/jobs/{any_job_id(rt)}", key=fresh)
        assert status == 200 and job
        assert ingest(rt, account_id)["status"] == "SUCCEEDED"

    for fn in ("LegacyImageFunction", "OpenAIImagesFunction", "JobsFunction", "IngestFunction"):
        assert calls.get(fn), f"{fn} made no AWS call: is the recording hooked? {sorted(calls)}"
    assert "GenerateStepFunction" in calls and "RecordStepFunction" in calls  # the state machine's tasks
    accounts = rt.stack.names["AccountsTable"]
    assert any(
        c.action == "dynamodb:UpdateItem" and c.resource.endswith(f":table/{accounts}")
        for c in calls["JobsFunction"]
    ), sorted(calls["JobsFunction"])

    policies, resolver = iam.local_policies(ROOT)
    report = iam.check(calls, policies)
    print(iam.format_report(report, resolver))
    assert report.ok, iam.format_report(report, resolver)
