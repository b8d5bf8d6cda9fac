"""Right-sizing: each function's cold import, warm invocation time and memory, and the cost it implies.

    python tests/bench/functions.py [--runs 3] [--requests 10]

Cold: a fresh interpreter with only the function's folder and its layers on ``sys.path`` (as
``tests/bench/bench.py`` does), without the layers' ``.pyc`` (``sam build`` ships none); CPU seconds
of ``import app`` (median of ``--runs``) and the process's peak RSS after it: the floor of the
function's memory.

Warm: the local runtime in this process; ``--requests`` legacy requests (generate, archive, mint,
record: the whole legacy path) and as many OpenAI-dialect ones, after one warm-up each; every
handler's wall time per invocation (median, max), the process CPU time during it (median: the
function's own work, plus any other thread's meanwhile), and the Python heap it allocated at its peak
(``tracemalloc``; an API function waiting on the state machine runs its steps in other threads of the
same process, so its figure includes theirs: an upper bound). The provider is the offline one:
generate's time here is our own work, a real provider's wait comes on top.

CPU time at Lambda's share: a function gets memory/1769 of a vCPU, so an import of C CPU-seconds
takes about C * 1769 / memory seconds there (this machine's core stands for one vCPU). Nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (the cold-import machinery: targets, the runtime-only .pyc cache)

FULL_VCPU_MB = 1769
SNIPPET = """
import json, resource, sys, time
prefixes = (sys.prefix, sys.base_prefix)
sys.path[:] = json.loads(sys.argv[1]) + [p for p in sys.path if p.startswith(prefixes)]
c0 = time.process_time()
import app
cpu = time.process_time() - c0
print(json.dumps({"cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cold(runs: int) -> dict[str, dict[str, float]]:
    targets = [t for t in bench.targets() if t.name not in (bench.BASELINE, bench.FLOOR)]
    cache = bench.runtime_only_cache(targets)
    out: dict[str, dict[str, float]] = {}
    for t in targets:
        samples = []
        for _ in range(runs):
            r = subprocess.run(
                [
                    sys.executable,
                    "-I",
                    "-B",
                    "-X",
                    f"pycache_prefix={cache}",
                    "-c",
                    SNIPPET,
                    json.dumps(t.path),
                ],
                capture_output=True,
                text=True,
                cwd=tempfile.gettempdir(),
                check=True,
            )
            samples.append(json.loads(r.stdout))
        out[t.name] = {
            "cpu": statistics.median(s["cpu"] for s in samples),
            "rss_mb": max(s["rss_mb"] for s in samples),
        }
    return out


class Recorder:
    """Times every handler call of the runtime's functions (wraps each function's loaded handler)."""

    def __init__(self, functions: dict[str, Any]) -> None:
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.heap: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        for logical_id, fn in functions.items():
            self._wrap(logical_id, fn)

    def _wrap(self, logical_id: str, fn: Any) -> None:
        load = fn.handler

        def handler() -> Any:
            inner = load()

            def timed(event: Any, ctx: Any) -> Any:
                before = tracemalloc.get_traced_memory()[0]
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    return inner(event, ctx)
                finally:
                    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                    peak = tracemalloc.get_traced_memory()[1]
                    with self._lock:
                        self.durations[logical_id].append(elapsed)
                        self.cpu[logical_id].append(cpu)
                        self.heap[logical_id] = max(self.heap[logical_id], (peak - before) / 2**20)

            return timed

        fn.handler = handler


def warm(requests: int) -> tuple[Recorder, dict[str, float]]:
    from imagemint_dev.local.runtime import start

    with tempfile.TemporaryDirectory() as state:
        rt = start(root=ROOT, state_dir=Path(state), port=0)
        try:
            key, account = rt.account["api_key"], rt.account["account_id"]

            def legacy() -> None:
                q = urllib.parse.urlencode({"prompt": "a koi", "account_id": account})
                urllib.request.urlopen(f"{rt.base_url}/api/image/generate?{q}", timeout=120).read()  # noqa: S310

            def openai() -> None:
                body = json.dumps({"model": "gpt-image-2", "prompt": "a koi", "quality": "low"}).encode()
                req = urllib.request.Request(
                    f"{rt.base_url}/v1/images/generations",
                    data=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                urllib.request.urlopen(req, timeout=120).read()  # noqa: S310

            for call in (legacy, openai):  # cold starts and first-use clients out of the way
                try:
                    call()
                except urllib.error.HTTPError as exc:
                    print(f"warm-up: HTTP {exc.code}", file=sys.stderr)
            rec = Recorder(rt.stack.functions)
            tracemalloc.start()
            wall: dict[str, float] = {}
            for name, call in (("legacy", legacy), ("openai", openai)):
                samples = []
                failed = 0
                for _ in range(requests):
                    tracemalloc.reset_peak()
                    t0 = time.perf_counter()
                    try:
                        call()
                    except urllib.error.HTTPError as exc:  # counted, not fatal: the table says so
                        failed += 1
                        print(f"{name}: HTTP {exc.code}", file=sys.stderr)
                    samples.append(time.perf_counter() - t0)
                wall[name] = statistics.median(samples)
                wall[f"{name} failed"] = failed
            tracemalloc.stop()
            return rec, wall
        finally:
            rt.stop()


def memory_of(logical_id: str) -> int:
    from imagemint_dev.local.template import Template

    for name, fdef in Template.load(ROOT / "template.yaml").functions().items():
        if name == logical_id:
            return int(fdef.memory)
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--no-cold", action="store_true", help="only the warm invocations")
    args = p.parse_args()

    from imagemint_dev.local.template import Template

    fdefs = Template.load(ROOT / "template.yaml").functions()
    by_dir = {f.code_uri.name: name for name, f in fdefs.items()}
    c = {} if args.no_cold else cold(args.runs)
    if c:
        print(f"cold import (no .pyc, CPU s, median of {args.runs}) and peak RSS after it", flush=True)
        print(f"{'function':<26}{'import s':>9}{'RSS MB':>8}{'memory':>8}{'import at share s':>19}")
    for d, v in sorted(c.items()):
        mem = fdefs[by_dir[d]].memory
        at_share = v["cpu"] * FULL_VCPU_MB / mem
        print(f"{by_dir[d]:<26}{v['cpu']:>9.3f}{v['rss_mb']:>8.0f}{mem:>8}{at_share:>19.2f}")

    print(f"\nwarm invocations through the local runtime ({args.requests} legacy + {args.requests} openai)")
    rec, wall = warm(args.requests)
    print(f"{'function':<26}{'calls':>6}{'median ms':>10}{'max ms':>9}{'CPU ms':>8}{'heap MB':>9}")
    for name in sorted(rec.durations):
        ds = rec.durations[name]
        med, top = statistics.median(ds) * 1000, max(ds) * 1000
        cpu = statistics.median(rec.cpu[name]) * 1000
        print(f"{name:<26}{len(ds):>6}{med:>10.0f}{top:>9.0f}{cpu:>8.0f}{rec.heap[name]:>9.1f}")
    print(
        "\nend to end (median ms): "
        + ", ".join(f"{k} {v * 1000:.0f}" for k, v in wall.items() if not k.endswith("failed"))
        + "; failed: "
        + ", ".join(f"{k.split()[0]} {v}" for k, v in wall.items() if k.endswith("failed"))
    )


if __name__ == "__main__":
    main()
