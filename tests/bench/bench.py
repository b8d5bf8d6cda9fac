"""Benchmark: each function's cold import time, and the local runtime's per-request latency.

    python tests/bench/bench.py [--runs 5] [--requests 40] [--no-latency] [--clock cpu|wall]

Cold import, as Lambda's init phase does it: a fresh interpreter whose
``sys.path`` holds only the function's folder, the layer folders the function
attaches in ``template.yaml`` and the interpreter's own stdlib and
site-packages, times ``import app`` (median of ``--runs``; by default the
process's CPU time, which other work on a shared machine hardly moves; ``--clock
wall`` for elapsed time). The baseline is
``import aws_lambda_powertools.event_handler, pydantic`` under the same
conditions, measured in the same rounds; each function's ratio to it is
printed, and an API function (one with HttpApi events) over
:data:`API_RATIO_BUDGET` is flagged. Beside it, what the function imports on its
first request (:class:`imagemint.lazy.Later`), timed after ``import app`` in the
same interpreter: an API function's dialect, models, settings and wiring.

Two conditions:

* with ``.pyc``: every module has its compiled form (a warm checkout, or the
  layers as ``sam build`` compiles them);
* without ``.pyc``: only the runtime's own modules (the stdlib, and boto3 with
  its dependencies, which the Lambda runtime ships compiled) have one; the
  function, the layers and the libraries the layers install are compiled from
  source at import. Each run uses ``-X pycache_prefix`` pointing at a cache
  that holds the runtime's ``.pyc`` only, and writes nothing (``-B``).

Latency: ``imagemint serve``'s in-process runtime, the offline provider,
sequential requests per dialect, p50/p99 in milliseconds.

Numbers go to stdout as tables; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINE = "baseline"
# The least an import that defines one pydantic model (deferred) pays: the baseline, pydantic.main,
# pydantic.fields and pydantic.types (``import pydantic`` alone loads none of them).
FLOOR = "floor"
BASELINE_IMPORT = "aws_lambda_powertools.event_handler, pydantic"
API_RATIO_BUDGET = 1.3
# What the Lambda python runtime ships compiled besides the stdlib (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
HEAVY = ("openai", "fal_client", "PIL", "web3", "eth_account", "arweave", "cryptography", "boto3")

# Runs in the fresh interpreter: argv[1] is a JSON list of the folders to put first on sys.path.
# Only the interpreter's own paths (stdlib, site-packages) stay; the editable install's .pth
# entries (every layer folder and dev/) go, as they are not on a Lambda's path.
IMPORT_SNIPPET = """
import json, sys, time
prefixes = (sys.prefix, sys.base_prefix)
sys.path[:] = json.loads(sys.argv[1]) + [p for p in sys.path if p.startswith(prefixes)]
w0, c0 = time.perf_counter(), time.process_time()
if sys.argv[2] == "baseline":
    import aws_lambda_powertools.event_handler, pydantic
elif sys.argv[2] == "floor":
    import aws_lambda_powertools.event_handler, pydantic
    from pydantic import BaseModel, ConfigDict, Field
    class Floor(BaseModel):
        model_config = ConfigDict(defer_build=True)
        x: int = Field(default=0)
else:
    import app
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
# Then what its first request imports (imagemint.lazy.Later), timed apart: not init, but a cold request's.
w1, c1 = time.perf_counter(), time.process_time()
if sys.argv[2] == "app":
    for v in list(vars(app).values()):
        if type(v).__name__ == "Later":
            v.load()
later_wall, later_cpu = time.perf_counter() - w1, time.process_time() - c1
heavy = sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules)
print(json.dumps({"wall": wall, "cpu": cpu, "later_wall": later_wall, "later_cpu": later_cpu,
                  "heavy": heavy}))
"""


@dataclass
class Target:
    name: str
    path: list[str]  # folders first on sys.path: the function's, then its layers'
    layers: list[str]
    api: bool


def targets() -> list[Target]:
    """The baseline, then every function of template.yaml with the layer folders it attaches."""
    from imagemint_dev.local.template import Template

    tpl = Template.load(ROOT / "template.yaml")
    layer_dirs = tpl.layers()
    out = [Target(BASELINE, [], [], False), Target(FLOOR, [], [], False)]
    for fn in sorted(tpl.functions().values(), key=lambda f: f.code_uri.name):
        api = any(ev.get("Type") == "HttpApi" for ev in fn.events.values())
        path = [str(fn.code_uri), *(str(layer_dirs[name]) for name in fn.layers)]
        out.append(Target(fn.code_uri.name, path, list(fn.layers), api))
    return out


def run_import(target: Target, flags: list[str]) -> dict:
    kind = target.name if target.name in (BASELINE, FLOOR) else "app"
    r = subprocess.run(
        [
            sys.executable,
            "-I",
            *flags,
            "-c",
            IMPORT_SNIPPET,
            json.dumps(target.path),
            kind,
            json.dumps(HEAVY),
        ],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # -I keeps the cwd off sys.path anyway
    )
    if r.returncode != 0:
        raise SystemExit(f"import of {target.name} failed:\n{r.stderr}")
    return json.loads(r.stdout)


def runtime_only_cache(all_targets: list[Target]) -> Path:
    """A pycache_prefix holding the .pyc of the runtime's modules only (stdlib, boto3 & co)."""
    cache = Path(tempfile.mkdtemp(prefix="imagemint-bench-pyc-"))
    for t in all_targets:  # one import each, writing every .pyc it needs under the prefix
        run_import(t, ["-X", f"pycache_prefix={cache}"])
    paths = sysconfig.get_paths()
    stdlib = [Path(paths[k]).resolve() for k in ("stdlib", "platstdlib")]
    site = [Path(paths[k]).resolve() for k in ("purelib", "platlib")]

    def runtime_module(pyc: Path) -> bool:
        src_dir = Path("/") / pyc.parent.relative_to(cache)
        for s in site:
            if src_dir.is_relative_to(s):
                top = (src_dir.relative_to(s).parts or (pyc.name.split(".")[0],))[0]
                return top in RUNTIME_PACKAGES
        return any(src_dir.is_relative_to(d) for d in stdlib)

    for pyc in list(cache.rglob("*.pyc")):
        if not runtime_module(pyc):
            pyc.unlink()
    return cache


Times = dict[str, dict[str, list[float]]]  # condition -> target -> ms of each round
LATER = "+first"  # condition suffix: the first request's lazy imports


def cold_imports(runs: int, clock: str) -> tuple[list[Target], Times, dict[str, list[str]]]:
    all_targets = targets()
    for t in all_targets:  # writes the .pyc of the "with .pyc" condition
        run_import(t, [])
    cache = runtime_only_cache(all_targets)
    conditions = {"pyc": [], "nopyc": ["-B", "-X", f"pycache_prefix={cache}"]}
    times: Times = {c: {t.name: [] for t in all_targets} for c in conditions}
    heavy: dict[str, list[str]] = {}
    try:
        # Rounds: every target once per round, so the baseline and the functions share the machine's load.
        for _ in range(runs):
            for cond, flags in conditions.items():
                for t in all_targets:
                    r = run_import(t, flags)
                    times[cond][t.name].append(r[clock] * 1000)
                    times.setdefault(cond + LATER, {}).setdefault(t.name, []).append(
                        r[f"later_{clock}"] * 1000
                    )
                    heavy[t.name] = r["heavy"]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return all_targets, times, heavy


def print_cold(runs: int, clock: str) -> None:
    all_targets, times, heavy = cold_imports(runs, clock)
    med = {c: {n: statistics.median(v) for n, v in by.items()} for c, by in times.items()}
    base = {c: med[c][BASELINE] for c in med}
    print(
        f"cold `import app` ({clock} time, median of {runs} rounds, ms; ratio = to the baseline "
        f"`import {BASELINE_IMPORT}` in the same conditions; API budget {API_RATIO_BUDGET}x)"
    )
    print(
        f"  {'':<24} {'layers':<16} {'with .pyc':>16}   {'without .pyc':>16}   "
        f"{'first request +ms':>17}   heavy modules imported"
    )
    over = []
    for t in all_targets:
        cells = []
        flag = ""
        for c in ("pyc", "nopyc"):
            ms = med[c][t.name]
            ratio = ms / base[c]
            cells.append(f"{ms:8.1f} {ratio:5.2f}x")
            if t.api and ratio > API_RATIO_BUDGET:
                flag = f"  OVER {API_RATIO_BUDGET}x"
                over.append(f"{t.name} ({c})")
        layers = "+".join(x.removesuffix("Layer").lower() for x in t.layers)
        name = t.name + (" (API)" if t.api else "") if t.name != FLOOR else "floor (1 model)"
        later = f"{med['pyc' + LATER][t.name]:.0f} / {med['nopyc' + LATER][t.name]:.0f}"
        print(
            f"  {name:<24} {layers:<16} {cells[0]:>16}   {cells[1]:>16}   {later:>17}   "
            f"{','.join(heavy[t.name]) or '-'}{flag}"
        )
    print(
        "  floor: the baseline plus one deferred pydantic model (pydantic.main, .fields, .types), "
        "the least any import defining a model pays"
    )
    print(
        "  first request +ms (with / without .pyc): what the function imports on its first request "
        "(imagemint.lazy.Later: the dialect, models, settings, wiring), after init; on AWS it runs at "
        "the function's CPU share (memory/1769 of a vCPU) where init runs on a full one"
    )
    if over:
        print(f"API functions over {API_RATIO_BUDGET}x the baseline: {', '.join(over)}")
    else:
        print(f"every API function within {API_RATIO_BUDGET}x the baseline, with and without .pyc")


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
    ap.add_argument("--no-latency", action="store_true", help="cold imports only")
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: the importing process's CPU time (steady on a shared machine); wall: elapsed time",
    )
    args = ap.parse_args()
    print_cold(args.runs, args.clock)
    if args.no_latency:
        return
    started, rows = latency(args.requests)
    print(f"\nlocal runtime ready in {started:.2f} s")
    print(f"per-request latency, offline provider, 1024x1024 PNG, {args.requests} sequential requests (ms)")
    for name, p50, p99 in rows:
        print(f"  {name:<48} p50 {p50:7.1f}   p99 {p99:7.1f}")


if __name__ == "__main__":
    main()
