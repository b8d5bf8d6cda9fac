"""The S3 trigger on the local runtime: real S3 event notifications from the bucket to the function."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("ingest"), port=0)
    yield rt
    rt.stop()


def put_and_wait(rt, key, data, metadata=None, timeout=60):
    s3 = rt.stack.client("s3")
    bucket = rt.stack.env["IMAGEMINT_BUCKET"]
    s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {})
    return wait_for(rt, "results/" + key.removeprefix("ingest/") + ".json", timeout)


def wait_for(rt, result_key, timeout=60):
    s3 = rt.stack.client("s3")
    bucket = rt.stack.env["IMAGEMINT_BUCKET"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=result_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(0.1)
    pytest.fail(f"no {result_key}")


def png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 30, 90)).save(buf, "PNG")
    return buf.getvalue()


def test_image_is_archived_and_minted(runtime):
    acct = runtime.account["account_id"]
    out = put_and_wait(runtime, f"ingest/{acct}/cover.png", png_bytes())
    assert out["status"] == "SUCCEEDED", out
    result = out["result"]
    assert result["archive"][0]["id"] and result["moment"]["tokenId"]
    assert result["size"] == "320x200"
    # Signed as taken in (c2pa.opened, no source type claimed), and the whole chain verifies.
    with urllib.request.urlopen(f"{runtime.base_url}/api/verify/{out['job_id']}", timeout=60) as r:
        verdict = json.loads(r.read())
    assert verdict["ok"], verdict
    (img,) = verdict["links"]["image"]["images"]
    assert img["c2pa_state"] == "Trusted" and img["digital_source_type"] is None
    assert verdict["links"]["image"]["checks"]["digital_source_type"] is True


def test_account_from_metadata(runtime):
    out = put_and_wait(
        runtime,
        "ingest/anything/cover2.png",
        png_bytes(),
        metadata={"account-id": runtime.account["account_id"]},
    )
    assert out["status"] == "SUCCEEDED", out


def test_json_request_runs_a_generation(runtime):
    acct = runtime.account["account_id"]
    body = json.dumps({"prompt": "a lighthouse", "size": "1024x1536", "archive": False}).encode()
    out = put_and_wait(runtime, f"ingest/{acct}/req.json", body)
    assert out["status"] == "SUCCEEDED", out
    assert out["result"]["size"] == "1024x1536" and out["job_id"]


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("notimage.png", b"hello", "input_refused"),
        ("bad.json", b"{not json", "invalid_request"),
        ("noprompt.json", b'{"model": "gpt-image-1"}', "invalid_request"),
        ("file.txt", b"text", "invalid_request"),
    ],
)
def test_bad_objects_get_an_error_result(runtime, name, data, code):
    out = put_and_wait(runtime, f"ingest/{runtime.account['account_id']}/{name}", data)
    assert out["status"] == "FAILED" and out["error"]["code"] == code


def test_unknown_account_gets_an_error_result(runtime):
    out = put_and_wait(runtime, "ingest/00000000-0000-4000-8000-000000000000/x.png", png_bytes())
    assert out["status"] == "FAILED" and out["error"]["code"] == "not_found"


def _credits(rt, account_id):
    item = rt.stack.client("dynamodb").get_item(
        TableName=rt.stack.env["IMAGEMINT_ACCOUNTS_TABLE"], Key={"pk": {"S": f"account#{account_id}"}}
    )["Item"]
    return int(item["credits"]["N"])


def _jobs_for(rt, job_id):
    items = rt.stack.client("dynamodb").scan(TableName=rt.stack.env["IMAGEMINT_JOBS_TABLE"])["Items"]
    return [i for i in items if i["job_id"]["S"] == job_id]


def test_one_object_three_uploads_and_three_deliveries_run_one_job(runtime):
    """The same bytes put three times (a client's retries) and the notification delivered three more
    times (S3's at-least-once, Lambda's retries): one job in DynamoDB, one charge."""
    acct = runtime.account["account_id"]
    key = f"ingest/{acct}/once.json"
    body = json.dumps({"prompt": "a lighthouse", "archive": False}).encode()
    before = _credits(runtime, acct)
    first = put_and_wait(runtime, key, body)
    assert first["status"] == "SUCCEEDED", first
    charged = before - _credits(runtime, acct)
    assert charged > 0

    s3 = runtime.stack.client("s3")
    bucket = runtime.stack.env["IMAGEMINT_BUCKET"]
    for _ in range(2):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag, "sequencer": "0A"}},
            }
        ]
    }
    lam = runtime.stack.client("lambda")
    name = runtime.stack.function_name("IngestFunction")
    result_key = "results/" + key.removeprefix("ingest/") + ".json"
    for _ in range(3):
        # S3 invokes asynchronously: each delivery is seen by the document it writes again.
        s3.delete_object(Bucket=bucket, Key=result_key)
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())
        again = wait_for(runtime, result_key)
        assert again["job_id"] == first["job_id"] and again["result"] == first["result"]

    assert len(_jobs_for(runtime, first["job_id"])) == 1
    assert before - _credits(runtime, acct) == charged
