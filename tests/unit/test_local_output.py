"""The pieces of ``imagemint serve``'s console: the job id an answer carries, the request line, our
warnings on one line (the whole runtime is in tests/integration/test_serve_output.py)."""

from __future__ import annotations

import logging
import sys

from imagemint_dev.local.output import OneLineFormatter, request_line
from imagemint_dev.local.server import job_id_of

JOB = "3beb64ca-d3e7-426f-be52-95b60288b5c5"
JSON = [("Content-Type", "application/json")]


def test_the_job_id_comes_from_the_location_header_a_job_id_field_or_a_job_url() -> None:
    assert job_id_of([("Location", f"https://api.test/api/jobs/{JOB}")], b"") == JOB
    assert job_id_of(JSON, b'{"job_id": "%s", "status": "ACCEPTED"}' % JOB.encode()) == JOB
    assert job_id_of(JSON, b'{"imageUrl": "https://api.test/api/files/%s/0.png"}' % JOB.encode()) == JOB
    signed = f"http://127.0.0.1:5000/bucket/images/{JOB}/0.png?X-Amz-Signature=abc"
    assert job_id_of([("Location", signed)], b"") == JOB  # GET /api/files/... redirects to S3
    assert job_id_of(JSON, b'{"data": [{"b64_json": "iVBORw0KGgo="}]}') is None
    assert job_id_of(JSON, b'{"error": "Job not found"}') is None
    assert job_id_of([("Content-Type", "image/png")], b"/api/files/%s/" % JOB.encode()) is None  # not text
    assert job_id_of(JSON, b'{"job_id": "%s0"}' % JOB.encode()) is None  # not a job id


def test_a_request_line() -> None:
    assert request_line("POST", "/v1/images/generations", 200, 812.4, JOB) == (
        f"POST /v1/images/generations 200 812 ms job {JOB}"
    )
    assert request_line("GET", "/nope", 404, 0.2, None) == "GET /nope 404 0 ms"
    assert request_line("GET", "/a\tb\x1b[31m", 0, 1, None) == "GET /a%09b%1B[31m - 1 ms"  # nothing escapes


def test_our_warnings_fold_onto_one_line_with_their_fields() -> None:
    record = logging.LogRecord(
        "imagemint", logging.WARNING, __file__, 1, "webhook\nnot delivered", None, None
    )
    record.job_id, record.attempts, record.detail = "j-1", 2, {"nested": "left out"}
    assert OneLineFormatter().format(record) == "warning: webhook not delivered job_id=j-1 attempts=2"
    try:
        raise ValueError("boom\n" + "x" * 400)
    except ValueError:
        record = logging.LogRecord("imagemint", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = OneLineFormatter().format(record)
    assert (
        line.startswith("error: failed (ValueError: boom xxx") and line.endswith("...") and len(line) == 240
    )
