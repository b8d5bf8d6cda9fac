"""``imagemint smoke``: call every endpoint once after a deploy and print a table.

    imagemint smoke --stack-name S --api-key K --account-id A     a deployed stack (its ApiUrl output)
    imagemint smoke --base-url URL --api-key K --account-id A     any base URL
    imagemint smoke                                                the running local runtime (dev account)

Each row is one call: endpoint, HTTP status, milliseconds, and whether the status is the one expected.
Generations ask for the cheapest output (``quality: low``, one image); the legacy endpoint always archives
and mints (one Arweave item and one mint on the deployment's chain); its job's public page is
``/moments/{jobId}``. The async generation's job is followed to its end, its image fetched through
``/api/files`` (302 expected), its provenance checked (``/api/verify/{job_id}``) and its resume asked
(409 expected: only a PARTIAL job resumes). The gallery page and ``/api/gallery`` are called once.
Exit status 1 when any row is not as expected.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT = "imagemint smoke test: a small red square"
# (method, template path) of every route the template serves; tests check this against template.yaml.
ROUTES = {
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/api/content/templates"),
    ("GET", "/api/content/templates/{id}"),
    ("POST", "/v1/images/generations"),
    ("POST", "/api/images/generations"),
    ("POST", "/v1/images/edits"),
    ("POST", "/api/content/image"),
    ("POST", "/action/generate_image"),
    ("GET", "/api/image/generate"),
    ("GET", "/api/jobs/{id}"),
    ("POST", "/api/jobs/{id}/resume"),
    ("GET", "/api/files/{job_id}/{name}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{asset}"),
    ("GET", "/api/verify/{ref}"),
    ("GET", "/gallery"),
    ("GET", "/api/gallery"),
    ("GET", "/moments/{ref}"),
}


FOLLOW_UPS = (
    "GET /api/jobs/{id}",
    "GET /api/files/{job_id}/{name}",
    "GET /api/verify/{ref}",
    "POST /api/jobs/{id}/resume",
)


@dataclass
class Row:
    endpoint: str
    status: int | None
    ms: float
    ok: bool
    note: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def png(size: int = 64) -> bytes:
    """A small opaque PNG (for the edit), written without an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xc8\x28\x50" * size for _ in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


class Smoke:
    def __init__(self, base_url: str, api_key: str, account_id: str, timeout: float = 120) -> None:
        self.base = base_url.rstrip("/")
        self.key = api_key
        self.account_id = account_id
        self.timeout = timeout
        self.rows: list[Row] = []
        self._opener = urllib.request.build_opener(_NoRedirect)

    def call(
        self,
        label: str,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        auth: bool = True,
    ) -> tuple[int | None, Any]:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if auth and self.key:
            hdrs["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs, method=method)  # noqa: S310
        t0 = time.perf_counter()
        status: int | None
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                status, payload = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            ms = (time.perf_counter() - t0) * 1000
            self.rows.append(Row(label, None, ms, False, type(exc).__name__))
            return None, None
        ms = (time.perf_counter() - t0) * 1000
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        note = ""
        if status not in expect and isinstance(parsed, dict):
            err = parsed.get("error")
            note = str(err.get("message") if isinstance(err, dict) else err)[:80]
        self.rows.append(Row(label, status, ms, status in expect, note))
        return status, parsed

    def run(self) -> list[Row]:
        self.call("GET /openapi.json", "GET", "/openapi.json", auth=False)
        self.call("GET /docs", "GET", "/docs", auth=False)
        self.call("GET /docs/{asset}", "GET", "/docs/swagger-ui.css", auth=False)
        _, models = self.call("GET /v1/models", "GET", "/v1/models")
        ids = [m.get("id") for m in (models or {}).get("data", []) if isinstance(m, dict)]
        model = "gpt-image-2" if "gpt-image-2" in ids else (ids[0] if ids else "gpt-image-2")
        self.call("GET /v1/models/{model}", "GET", f"/v1/models/{urllib.parse.quote(model)}")
        _, templates = self.call("GET /api/content/templates", "GET", "/api/content/templates")
        items = templates if isinstance(templates, list) else (templates or {}).get("templates") or []
        tid = next((t.get("id") for t in items if isinstance(t, dict) and t.get("id")), "unknown")
        self.call("GET /api/content/templates/{id}", "GET", f"/api/content/templates/{tid}")

        cheap = {"prompt": PROMPT, "model": model, "n": 1, "quality": "low"}
        self.call(
            "POST /v1/images/generations",
            "POST",
            "/v1/images/generations",
            body={**cheap, "response_format": "url"},
        )
        self.call("POST /api/images/generations", "POST", "/api/images/generations", body=cheap)
        boundary = uuid.uuid4().hex
        parts = [("model", model.encode()), ("prompt", PROMPT.encode()), ("quality", b"low")]
        form = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + v + b"\r\n"
            for k, v in parts
        )
        form += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="s.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + png()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        self.call(
            "POST /v1/images/edits",
            "POST",
            "/v1/images/edits",
            raw=form,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        self.call("POST /api/content/image", "POST", "/api/content/image", body={"prompt": PROMPT})
        self.call("POST /action/generate_image", "POST", "/action/generate_image", body={"prompt": PROMPT})
        legacy_job = None
        if self.account_id:
            q = urllib.parse.urlencode({"prompt": PROMPT, "account_id": self.account_id})
            status, legacy = self.call("GET /api/image/generate", "GET", f"/api/image/generate?{q}")
            legacy_job = (legacy or {}).get("jobId") if status == 200 else None
        else:
            self.rows.append(Row("GET /api/image/generate", None, 0.0, False, "skipped: pass --account-id"))
        self.call("GET /gallery", "GET", "/gallery", auth=False)
        self.call("GET /api/gallery", "GET", "/api/gallery")
        if legacy_job:  # archived (and minted, where the chain is configured): it has a public page
            self.call("GET /moments/{ref}", "GET", f"/moments/{legacy_job}", auth=False)
        else:
            self.rows.append(Row("GET /moments/{ref}", None, 0.0, False, "no archived job"))

        status, accepted = self.call(
            "POST /v1/images/generations (async)",
            "POST",
            "/v1/images/generations",
            body={**cheap, "response_format": "url"},
            headers={"Prefer": "respond-async"},
            expect=(202,),
        )
        job_id = (accepted or {}).get("job_id") if status == 202 else None
        if not job_id:
            for label in FOLLOW_UPS:
                self.rows.append(Row(label, None, 0.0, False, "no async job"))
            return self.rows
        job = self._follow(job_id)
        urls = ((job or {}).get("result") or {}).get("image_urls") or []
        if urls:
            path = urllib.parse.urlsplit(urls[0]).path
            self.call("GET /api/files/{job_id}/{name}", "GET", path, expect=(302,), auth=False)
        else:
            self.rows.append(Row("GET /api/files/{job_id}/{name}", None, 0.0, False, "the job has no image"))
        self.call("GET /api/verify/{ref}", "GET", f"/api/verify/{job_id}", auth=False)
        expect = (202,) if (job or {}).get("status") == "PARTIAL" else (409,)
        self.call("POST /api/jobs/{id}/resume", "POST", f"/api/jobs/{job_id}/resume", body={}, expect=expect)
        return self.rows

    def _follow(self, job_id: str, wait_s: float = 120) -> dict[str, Any] | None:
        """Poll the job until it ends; only the last read is a row."""
        deadline = time.monotonic() + wait_s
        while True:
            before = len(self.rows)
            status, job = self.call("GET /api/jobs/{id}", "GET", f"/api/jobs/{job_id}")
            done = not isinstance(job, dict) or job.get("status") not in ("ACCEPTED", "RUNNING")
            if done or status != 200 or time.monotonic() > deadline:
                if isinstance(job, dict) and not done:
                    self.rows[-1].note = f"still {job.get('status')}"
                return job
            del self.rows[before:]
            time.sleep(1.0)


def render(rows: list[Row]) -> str:
    w = max(len(r.endpoint) for r in rows)
    lines = [f"{'endpoint':<{w}}  status      ms  ok"]
    for r in rows:
        status = str(r.status) if r.status is not None else "-"
        note = f"  {r.note}" if r.note else ""
        lines.append(f"{r.endpoint:<{w}}  {status:>6}  {r.ms:6.0f}  {'yes' if r.ok else 'NO'}{note}")
    bad = sum(not r.ok for r in rows)
    lines.append(f"{len(rows) - bad}/{len(rows)} as expected")
    return "\n".join(lines)


def _stack_url(stack_name: str) -> str:
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return outputs["ApiUrl"]


def cmd_smoke(args: argparse.Namespace) -> int:
    base_url, key, account_id = args.base_url, args.api_key, args.account_id
    if not (base_url and key) and not args.stack_name:
        from imagemint_dev.local.stack import find_root

        dev = Path(args.state_dir or find_root() / ".imagemint") / "dev-account.json"
        if dev.exists():
            info = json.loads(dev.read_text())
            base_url = base_url or info["base_url"]
            key = key or info["api_key"]
            account_id = account_id or info["account_id"]
    if not base_url and args.stack_name:
        base_url = _stack_url(args.stack_name)
    if not base_url or not key:
        raise SystemExit("error: give --base-url (or --stack-name) and --api-key (or IMAGEMINT_API_KEY)")
    rows = Smoke(base_url, key, account_id or "", timeout=args.timeout).run()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        print(render(rows))
    return 0 if all(r.ok for r in rows) else 1


def add_parser(sub: Any) -> None:
    s = sub.add_parser("smoke", help="call every endpoint once and print a table (endpoint, status, ms, ok)")
    s.add_argument("--stack-name", default=None, help="the base URL from the stack's ApiUrl output")
    s.add_argument("--base-url", default=None)
    s.add_argument("--api-key", default=os.environ.get("IMAGEMINT_API_KEY"))
    s.add_argument("--account-id", default=None, help="the key's account (the legacy endpoint names it)")
    s.add_argument("--state-dir", default=None, help="the local runtime's (default: .imagemint/)")
    s.add_argument("--timeout", type=float, default=120.0, help="per call, seconds")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_smoke)
