"""Benchmark: each function's cold import time, and the local runtime's per-request latency.

    python tests/bench/bench.py [--runs 5] [--requests 40]

Cold import: a fresh interpreter imports the function's handler module (what
Lambda's init phase does), median of ``--runs``; ``.pyc`` files are present as
after a warm checkout. Latency: ``imagemint serve``'s in-process runtime, the
offline provider, sequential requests per dialect, p50/p99 in milliseconds.
Numbers go to stdout as a table; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_SNIPPET = """
import importlib.util, sys, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
dt = time.perf_counter() - t0
heavy = sorted(m for m in ("openai", "web3", "fal_client", "arweave", "PIL") if m in sys.modules)
print(dt, ",".join(heavy))
"""


def cold_imports(runs: int) -> list[tuple[str, float, str]]:
    out = []
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        times, heavy = [], ""
        for _ in range(runs):
            r = subprocess.run(
                [sys.executable, "-c", IMPORT_SNIPPET, str(app)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            t, _, heavy = r.stdout.strip().partition(" ")
            times.append(float(t))
        out.append((app.parent.name, statistics.median(times) * 1000, heavy or "-"))
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def latency(n: int) -> tuple[float, list[tuple[str, float, float]]]:
    from imagemint_dev.local.runtime import start

    # A benchmark is not a client to rate-limit.
    limits = {"IMAGEMINT_RATE_LIMIT_RPM": "1000000", "IMAGEMINT_RATE_LIMIT_CONCURRENCY": "64"}
    rt = start(root=ROOT, state_dir=Path(tempfile.mkdtemp()), port=0, extra_env=limits)
    key, acct = rt.account["api_key"], rt.account["account_id"]
    cases = {
        "legacy GET /api/image/generate": (
            "GET",
            f"/api/image/generate?prompt=bench&account_id={acct}",
            None,
            {},
        ),
        "content POST /api/content/image": (
            "POST",
            "/api/content/image",
            {"prompt": "bench"},
            {"x-api-key": key},
        ),
        "openai POST /v1/images/generations (url)": (
            "POST",
            "/v1/images/generations",
            {"prompt": "bench", "model": "gpt-image-1"},
            {"Authorization": f"Bearer {key}"},
        ),
        "openai POST /v1/images/generations (b64_json)": (
            "POST",
            "/v1/images/generations",
            {"prompt": "bench", "model": "gpt-image-1", "response_format": "b64_json"},
            {"Authorization": f"Bearer {key}"},
        ),
        "agentai POST /action/generate_image": (
            "POST",
            "/action/generate_image",
            {"prompt": "bench", "model_aspect_ratio": "1:1"},
            {"Authorization": f"Bearer {key}"},
        ),
        "templates GET /api/content/templates": ("GET", "/api/content/templates", None, {}),
    }
    rows = []
    try:
        for name, (method, path, body, headers) in cases.items():
            times = []
            for i in range(n + 2):
                data = json.dumps(body).encode() if body is not None else None
                req = urllib.request.Request(
                    rt.base_url + path,
                    data=data,
                    method=method,
                    headers={"Content-Type": "application/json", **headers},
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - our own 127.0.0.1 server
                    r.read()
                if i >= 2:  # the first two warm the functions (cold start is measured above)
                    times.append((time.perf_counter() - t0) * 1000)
            rows.append((name, pct(times, 50), pct(times, 99)))
    finally:
        rt.stop()
    return rt.started_in_s, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    print(f"cold import of each handler module (median of {args.runs}, ms; API function budget 300 ms)")
    for name, ms, heavy in cold_imports(args.runs):
        print(f"  {name:<20} {ms:7.1f}   heavy modules imported: {heavy}")
    started, rows = latency(args.requests)
    print(f"\nlocal runtime ready in {started:.2f} s")
    print(f"per-request latency, offline provider, 1024x1024 PNG, {args.requests} sequential requests (ms)")
    for name, p50, p99 in rows:
        print(f"  {name:<48} p50 {p50:7.1f}   p99 {p99:7.1f}")


if __name__ == "__main__":
    main()
