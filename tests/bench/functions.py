"""Right-sizing: each function's cold import, warm invocation time and memory, and the cost it implies.

    python tests/bench/functions.py [--runs 3] [--requests 10] [--no-cold] [--no-pyc]

Cold: a fresh interpreter with only the function's folder and its layers on ``sys.path`` (as
``tests/bench/bench.py`` does), with the layers' ``.pyc`` (each layer's Makefile ships them, compiled
for python3.12; ``--no-pyc`` measures without); CPU seconds of ``import app`` (median of ``--runs``)
and the process's peak RSS after it: the floor of the function's memory.

Warm: the local runtime in this process; ``--requests`` legacy requests (generate, archive, mint,
record: the whole legacy path) and as many OpenAI-dialect ones, after one warm-up each; every
handler's wall time per invocation (median, max), the process CPU time during it (median: the
function's own work, plus any other thread's meanwhile), the CPU time of the handler's own thread
(what the function itself computes: the emulated AWS services and the steps an API function waits on
run in other threads), and the Python heap it allocated at its peak (``tracemalloc``; an API function
waiting on the state machine runs its steps in other threads of the same process, so its figure
includes theirs: an upper bound). The provider returns one ready 1024x1024 PNG of noise (about the
size a real provider answers) at once: generate's time here is our own work (decode, sniff, store),
a real provider's wait comes on top.

Cost: the AWS cost of one legacy image (generate, sign, archive image and metadata, mint, record; the
API function waiting on the synchronous execution) at the template's memory sizes: each function's
measured own CPU stretched by its CPU share (memory/1769 of a vCPU), plus the rest of its measured
wall time (its calls to AWS, the embedded chain), plus the waits a deployment adds and this machine
cannot measure, stated in :data:`WAITS` (the provider, one Base block, an Arweave gateway's round
trip). The other services' figures per image are in :data:`OTHER_PER_IMAGE` with their arithmetic.

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
# Prices of 2026-11, us-east-1.
LAMBDA_ARM_GB_S = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
# What a deployment waits on that this machine cannot measure (seconds per invocation).
WAITS = {
    "GenerateStepFunction": 20.0,  # the provider: the 20 s per image (a real one takes 15-60 s)
    "MintStepFunction": 3.0,  # one Base block (2 s) to the receipt, and the RPC round trips
    "ArchiveStepFunction": 0.4,  # posting one signed item to the Arweave gateway
}
# One legacy image: the invocations of each function (warm-ups, ~5 ms each, counted as requests).
LEGACY_CALLS = {
    "LegacyImageFunction": 1,
    "GenerateStepFunction": 1,
    "SignStepFunction": 1,
    "ArchiveStepFunction": 2,
    "MintStepFunction": 1,
    "RecordStepFunction": 1,
}
WARMUPS = 3  # Sign, Archive and Mint, invoked with {"warm": true} while Generate runs
# Express state transitions and bookkeeping between the steps, seconds (the API function waits them).
TRANSITIONS_S = 0.3
# The other services per legacy image, $ (not measured here):
OTHER_PER_IMAGE = {
    # $1.00/M requests + $0.00001667/GB-s, billed per 64 MB of state and 100 ms: 26 s x 0.0625 GB
    "Step Functions Express": 1.0 / 1e6 + 26 * 0.0625 * 0.00001667,
    # on-demand $0.625/M write units, $0.125/M read units: ~60 writes of 1 KB units (job record
    # updates, ledger, credits, rate limit, idempotency, mint queue, nonces), ~50 reads
    "DynamoDB": 60 * 0.625 / 1e6 + 50 * 0.125 / 1e6,
    # PUT $0.005/1,000 (image, signed image, two Arweave items), GET $0.0004/1,000 (~10)
    "S3": 4 * 0.005 / 1000 + 10 * 0.0004 / 1000,
    "HTTP API": 1.00 / 1e6,
}
SNIPPET = """
import json, resource, sys, time
prefixes = (sys.prefix, sys.base_prefix)
sys.path[:] = json.loads(sys.argv[1]) + [p for p in sys.path if p.startswith(prefixes)]
c0 = time.process_time()
import app
cpu = time.process_time() - c0
print(json.dumps({"cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cold(runs: int, pyc: bool = True) -> dict[str, dict[str, float]]:
    targets = [t for t in bench.targets() if t.name not in (bench.BASELINE, bench.FLOOR)]
    if pyc:  # every module compiled (one import of each writes what is missing)
        for t in targets:
            bench.run_import(t, [])
        flags = ["-B"]
    else:
        flags = ["-B", "-X", f"pycache_prefix={bench.runtime_only_cache(targets)}"]
    out: dict[str, dict[str, float]] = {}
    for t in targets:
        samples = []
        for _ in range(runs):
            r = subprocess.run(
                [
                    sys.executable,
                    "-I",
                    *flags,
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
        self.own: dict[str, list[float]] = defaultdict(list)
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
                t0, c0, o0 = time.perf_counter(), time.process_time(), time.thread_time()
                try:
                    return inner(event, ctx)
                finally:
                    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                    own = time.thread_time() - o0
                    peak = tracemalloc.get_traced_memory()[1]
                    with self._lock:
                        if not (isinstance(event, dict) and event.get("warm")):
                            self.durations[logical_id].append(elapsed)
                        self.cpu[logical_id].append(cpu)
                        if not (isinstance(event, dict) and event.get("warm")):
                            self.own[logical_id].append(own)
                        self.heap[logical_id] = max(self.heap[logical_id], (peak - before) / 2**20)

            return timed

        fn.handler = handler


class ReadyProvider:
    """Answers every call at once with ready 1024x1024 PNGs of noise (about a real answer's size)."""

    name = "ready"

    def __init__(self) -> None:
        import io
        import os

        from PIL import Image

        buf = io.BytesIO()
        Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3)).save(buf, format="PNG")
        self.png = buf.getvalue()

    def generate(self, call: Any) -> Any:
        from imagemint.domain.ports import ProviderImage, ProviderResult

        image = ProviderImage(data=self.png, media_type="image/png", width=1024, height=1024)
        return ProviderResult(images=[image] * call.n, model=call.provider_model)


def warm(requests: int) -> tuple[Recorder, dict[str, float]]:
    """The warm figures, minting on anvil (its own process, automine) with the real Zora contracts:
    the embedded chain would run the EVM in the mint step's own thread and count as its work."""
    import gas  # anvil and the Zora deployment, as the gas benchmark starts them

    from imagemint.wiring import register_provider
    from imagemint_dev.local.runtime import start

    proc, url = gas.start_anvil()
    with tempfile.TemporaryDirectory() as state:
        try:
            _, addresses, signer = gas.chain(url)
            rt = start(
                root=ROOT, state_dir=Path(state), port=0, extra_env=gas.rpc_env(url, addresses, signer)
            )
        except BaseException:
            gas.stop(proc)
            raise
        register_provider("openai", ReadyProvider())
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
            register_provider("openai", None)
            rt.stop()
            gas.stop(proc)


def memory_of(logical_id: str) -> int:
    from imagemint_dev.local.template import Template

    for name, fdef in Template.load(ROOT / "template.yaml").functions().items():
        if name == logical_id:
            return int(fdef.memory)
    return 0


def legacy_cost(rec: Recorder, memory: dict[str, int]) -> list[tuple[str, int, float, float]]:
    """(function, memory MB, seconds, GB-s) per legacy image, from the warm figures (see the module
    docstring); the API function's seconds are its own work plus its execution's."""
    rows: list[tuple[str, int, float, float]] = []
    steps_s = TRANSITIONS_S
    for name, calls in LEGACY_CALLS.items():
        mem = memory[name]
        wall = statistics.median(rec.durations[name])
        own = statistics.median(rec.own[name])
        waited = max(0.0, wall - own) if name != "LegacyImageFunction" else 0.0
        seconds = own * max(1.0, FULL_VCPU_MB / mem) + waited + WAITS.get(name, 0.0)
        if name != "LegacyImageFunction":
            steps_s += seconds * calls
        rows.append((name, mem, seconds * calls, seconds * calls * mem / 1024))
    name, mem, own_s, _ = rows[0]
    rows[0] = (name, mem, own_s + steps_s, (own_s + steps_s) * mem / 1024)
    return rows


def print_cost(rec: Recorder, memory: dict[str, int]) -> None:
    rows = legacy_cost(rec, memory)
    print(
        "\nAWS cost of one legacy image (arm64 Lambda; waits added: "
        + ", ".join(f"{k.removesuffix('Function')} {v:g} s" for k, v in WAITS.items())
        + ")"
    )
    print(f"{'function':<26}{'memory':>7}{'seconds':>9}{'GB-s':>8}{'$ per 1,000':>13}")
    gbs = 0.0
    for name, mem, seconds, g in rows:
        gbs += g
        print(f"{name:<26}{mem:>7}{seconds:>9.2f}{g:>8.2f}{g * LAMBDA_ARM_GB_S * 1000:>13.3f}")
    requests = sum(LEGACY_CALLS.values()) + WARMUPS
    lam = gbs * LAMBDA_ARM_GB_S + requests * LAMBDA_REQUEST
    print(f"{'Lambda':<26}{'':>7}{'':>9}{gbs:>8.2f}{lam * 1000:>13.3f}  ({requests} requests)")
    total = lam
    for name, dollars in OTHER_PER_IMAGE.items():
        total += dollars
        print(f"{name:<26}{'':>24}{dollars * 1000:>13.3f}")
    print(f"{'total per 1,000 legacy images':<50}{total * 1000:>13.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--no-cold", action="store_true", help="only the warm invocations")
    p.add_argument("--no-pyc", action="store_true", help="cold imports without the layers' .pyc")
    args = p.parse_args()

    from imagemint_dev.local.template import Template

    fdefs = Template.load(ROOT / "template.yaml").functions()
    by_dir = {f.code_uri.name: name for name, f in fdefs.items()}
    c = {} if args.no_cold else cold(args.runs, pyc=not args.no_pyc)
    if c:
        what = "no .pyc" if args.no_pyc else "with .pyc"
        print(f"cold import ({what}, CPU s, median of {args.runs}) and peak RSS after it", flush=True)
        print(f"{'function':<26}{'import s':>9}{'RSS MB':>8}{'memory':>8}{'import at share s':>19}")
    for d, v in sorted(c.items()):
        mem = fdefs[by_dir[d]].memory
        at_share = v["cpu"] * FULL_VCPU_MB / min(mem, FULL_VCPU_MB)
        print(f"{by_dir[d]:<26}{v['cpu']:>9.3f}{v['rss_mb']:>8.0f}{mem:>8}{at_share:>19.2f}")

    print(f"\nwarm invocations through the local runtime ({args.requests} legacy + {args.requests} openai)")
    rec, wall = warm(args.requests)
    print(
        f"{'function':<26}{'calls':>6}{'median ms':>10}{'max ms':>9}{'CPU ms':>8}{'own ms':>8}{'heap MB':>9}"
    )
    for name in sorted(rec.durations):
        ds = rec.durations[name]
        med, top = statistics.median(ds) * 1000, max(ds) * 1000
        cpu = statistics.median(rec.cpu[name]) * 1000
        own = statistics.median(rec.own[name]) * 1000
        print(f"{name:<26}{len(ds):>6}{med:>10.0f}{top:>9.0f}{cpu:>8.0f}{own:>8.0f}{rec.heap[name]:>9.1f}")
    print(
        "\nend to end (median ms): "
        + ", ".join(f"{k} {v * 1000:.0f}" for k, v in wall.items() if not k.endswith("failed"))
        + "; failed: "
        + ", ".join(f"{k.split()[0]} {v}" for k, v in wall.items() if k.endswith("failed"))
    )
    print_cost(rec, {name: int(f.memory) for name, f in fdefs.items()})


if __name__ == "__main__":
    main()
