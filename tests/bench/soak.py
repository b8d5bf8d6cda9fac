"""Soak benchmark: the local runtime as a server left running (issue 12 item 7).

    python tests/bench/soak.py                      # quick: 100 generations per phase, c=1 then c=4
    make soak                                       # the full run: 1,000 per phase, progress every 100
    python tests/bench/soak.py --generations 1000 --concurrency 1,4 --every 100

The full run takes about 35-60 minutes on a 2-core machine (0.3-0.5 generations/s while other
work shares the cores; each generation costs about 1 s of CPU: the offline image, C2PA signing,
the signed Arweave item and a Zora mint on the in-process EVM).

Starts the local runtime in this process (``imagemint_dev.local.runtime.start``, as ``imagemint
serve`` does: offline provider, embedded Arweave store and chain; rate limits lifted as
``tests/bench/bench.py`` does, a dev account with enough credits), warms it up, then runs one
phase per ``--concurrency`` value: ``--generations`` small generations from that many client
threads, alternating the legacy ``GET /api/image/generate`` (archives and mints on the embedded
chain) and an OpenAI-dialect ``POST /v1/images/generations`` (gpt-image-2, 1024x1024,
``response_format: url``).

Per phase it prints requests/s, p50/p95 latency, errors, and this process's RSS (the runtime's:
it runs here) before, after, and after ``gc.collect()``; ``--every N`` also prints the rate,
latency, RSS and load average of each N generations. The summary gives RSS growth from the end
of the warm-up to the end of each phase, each phase's throughput against the sequential one,
and the load average (the machine is shared: compare phases of one run, not runs).
``--trace N`` also takes tracemalloc snapshots around each phase and prints the N sites whose
allocations grew most (slow: for finding a leak, not for throughput).

Nothing here asserts anything; numbers go to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"IMAGEMINT_RATE_LIMIT_RPM": "1000000", "IMAGEMINT_RATE_LIMIT_CONCURRENCY": "64"}


def rss_mb() -> float:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:  # Linux without psutil
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


@dataclass
class Phase:
    concurrency: int
    n: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss_before: float = 0.0
    rss_after: float = 0.0
    rss_after_gc: float = 0.0

    @property
    def rps(self) -> float:
        return self.n / self.seconds if self.seconds else float("nan")


class Client:
    def __init__(self, base_url: str, account_id: str, api_key: str) -> None:
        self.base = base_url
        self.account_id = account_id
        self.key = api_key

    def request(self, i: int) -> tuple[float, str | None]:
        """Generation ``i`` (even: legacy GET, odd: OpenAI POST); (ms, error or None)."""
        if i % 2 == 0:
            req = urllib.request.Request(
                f"{self.base}/api/image/generate?prompt=soak+{i}&account_id={self.account_id}"
            )
        else:
            body = {
                "prompt": f"soak {i}",
                "model": "gpt-image-2",
                "size": "1024x1024",
                "response_format": "url",
            }
            req = urllib.request.Request(
                f"{self.base}/v1/images/generations",
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            )
        t0 = time.perf_counter()
        error = None
        try:
            with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - our own 127.0.0.1 server
                r.read()
        except urllib.error.HTTPError as exc:
            error = f"{exc.code} {exc.read()[:200].decode('utf-8', 'replace')}"
        except Exception as exc:  # noqa: BLE001 - counted and printed
            error = f"{type(exc).__name__}: {exc}"
        return (time.perf_counter() - t0) * 1000, error


def run_phase(client: Client, n: int, concurrency: int, start_index: int, every: int = 0) -> Phase:
    phase = Phase(concurrency, n)
    lock = threading.Lock()
    window = [time.perf_counter()]

    def one(i: int) -> None:
        ms, error = client.request(start_index + i)
        with lock:
            phase.latencies.append(ms)
            if error:
                phase.errors[error] = phase.errors.get(error, 0) + 1
            done = len(phase.latencies)
            if every and done % every == 0:  # progress: the last window's rate and latency, RSS now
                now = time.perf_counter()
                last = phase.latencies[-every:]
                print(
                    f"    {done:>5}/{n}  {every / (now - window[0]):6.2f} req/s  p50 {pct(last, 50):6.0f} ms"
                    f"  p95 {pct(last, 95):6.0f} ms  RSS {rss_mb():7.1f} MB  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                window[0] = now

    gc.collect()
    phase.rss_before = rss_mb()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    phase.seconds = time.perf_counter() - t0
    phase.rss_after = rss_mb()
    gc.collect()
    phase.rss_after_gc = rss_mb()
    return phase


def print_phase(p: Phase) -> None:
    print(
        f"  c={p.concurrency:<3} n={p.n:<5} {p.rps:6.2f} req/s   p50 {pct(p.latencies, 50):7.0f} ms"
        f"   p95 {pct(p.latencies, 95):7.0f} ms   errors {sum(p.errors.values()):<4}"
        f" RSS {p.rss_before:7.1f} -> {p.rss_after:7.1f} MB (after gc {p.rss_after_gc:7.1f},"
        f" {p.rss_after_gc - p.rss_before:+6.1f} MB)",
        flush=True,
    )
    for error, count in sorted(p.errors.items(), key=lambda kv: -kv[1])[:5]:
        print(f"      {count} x {error}", flush=True)


def print_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> None:
    stats = after.compare_to(before, "traceback")
    print(f"    tracemalloc: top {top} growing sites")
    for s in stats[:top]:
        print(f"    {s.size_diff / 1024:+10.1f} KiB {s.count_diff:+7d} blocks")
        for line in s.traceback.format()[-12:]:
            print(f"        {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", type=int, default=100, help="generations per phase (the soak: 1000)")
    ap.add_argument("--concurrency", default="1,4", help="client threads of each phase, comma-separated")
    ap.add_argument("--warmup", type=int, default=20, help="sequential generations before the phases")
    ap.add_argument("--every", type=int, default=0, help="print progress every N generations of a phase")
    ap.add_argument("--trace", type=int, default=0, help="print the N most-grown tracemalloc sites per phase")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    from imagemint_dev.local.runtime import start

    rss_start = rss_mb()
    total = args.warmup + args.generations * len(levels)
    # As `imagemint serve` runs: one line per request to a console (discarded here), the rest to debug.log.
    console = open(os.devnull, "w")  # noqa: SIM115 - closed below
    rt = start(
        root=ROOT,
        state_dir=Path(tempfile.mkdtemp(prefix="imagemint-soak-")),
        port=0,
        extra_env=LIMITS,
        credits=max(100_000, 1_000 * total),
        console=console,
    )
    try:
        client = Client(rt.base_url, rt.account["account_id"], rt.account["api_key"])
        print(
            f"local runtime ready in {rt.started_in_s:.2f} s; RSS {rss_start:.1f} MB before start, "
            f"{rss_mb():.1f} MB after; python {sys.version.split()[0]}",
            flush=True,
        )
        warm = run_phase(client, args.warmup, 1, 0)
        print(f"warm-up ({args.warmup} sequential generations):", flush=True)
        print_phase(warm)
        print(
            f"phases: {args.generations} generations each, alternating legacy GET /api/image/generate"
            " and POST /v1/images/generations (gpt-image-2 1024x1024, url)",
            flush=True,
        )
        index = args.warmup
        phases = []
        for c in levels:
            if args.trace:
                tracemalloc.start(16)
                snap0 = tracemalloc.take_snapshot()
            p = run_phase(client, args.generations, c, index, args.every)
            index += args.generations
            phases.append(p)
            print_phase(p)
            if args.trace:
                gc.collect()
                snap1 = tracemalloc.take_snapshot()
                tracemalloc.stop()
                print_growth(snap0, snap1, args.trace)
        seq = next((p for p in phases if p.concurrency == 1), None)
        print("\nsummary")
        print(f"  RSS after warm-up {warm.rss_after_gc:.1f} MB, at the end {rss_mb():.1f} MB")
        done = args.warmup
        for p in phases:
            done += p.n
            vs = f"  {p.rps / seq.rps:5.2f}x sequential" if seq and p is not seq else ""
            print(
                f"  c={p.concurrency:<3} {p.rps:6.2f} req/s  p50 {pct(p.latencies, 50):6.0f} ms"
                f"  p95 {pct(p.latencies, 95):6.0f} ms  RSS {p.rss_after_gc:7.1f} MB"
                f" ({p.rss_after_gc - warm.rss_after_gc:+6.1f} MB since warm-up, {done} generations){vs}"
            )
        print("  load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
        if phases:
            every = [ms for p in phases for ms in p.latencies]
            print(f"  median latency over all phases {statistics.median(every):.0f} ms")
    finally:
        rt.stop()
        console.close()


if __name__ == "__main__":
    main()
