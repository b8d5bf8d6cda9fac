"""Benchmark: gas per moment on anvil with the real Zora 1155 contracts, and mint throughput.

    python tests/bench/gas.py                 # the gas table
    python tests/bench/gas.py --throughput    # also: the pipeline on 2 s blocks (takes ~2 minutes)
    python tests/bench/gas.py --throughput --clients 4 --seconds 120 --rate 72   # sustained 72 jobs/min

Gas: one anvil (chain id 8453, from the npm package in tests/peers), the Zora
1155 stack deployed from the packaged artifacts, moments with real-length
metadata URIs (``ar://`` + 43 characters: a string over 31 bytes takes three
storage slots). In one go on that chain it mints, for the same creator:

* Recoup's flow: a new creator contract per image (``createContractDeterministic``
  with ``setupNewToken`` + ``adminMint`` as its setup actions);
* two transactions on the creator's contract: ``setupNewToken``, then ``adminMint``;
* our path (:meth:`ZoraMinter.mint_many`: one multicall) with 1, 4 and 10
  moments pending together;

and prints gas per moment for each (steady state: the contract has tokens
already). Targets (issue 14): <= 235,000 alone, <= 202,000 each for four,
<= 196,000 each for ten.

Throughput (``--throughput``): a second anvil with ``--block-time 2`` (Base's
block time), the local runtime in ``chain_mode=rpc`` on it (the mint step's
nonce allocator and batch coordinator on the runtime's DynamoDB), ``--clients``
concurrent clients posting async generations (archive on the embedded store, mint on) for
``--seconds``, at an offered ``--rate`` of jobs per minute spread over the clients (or, without it,
each client posting as soon as its last post was answered: more than the local runtime's CPU can
process, so the backlog and the mint steps' waits grow); then it waits for every job, and prints
moments/minute, p50/p95 time from acceptance to the mint's receipt being recorded, gas per moment, the
nonce gaps left (pending - latest, and the allocator counter against the
node) and tokens minted twice (0 expected for both).

Numbers go to stdout; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tests" / "peers" / "node_modules"
TARGETS = {1: 235_000, 4: 202_000, 10: 196_000}


def uri() -> str:
    return "ar://" + secrets.token_urlsafe(32)[:43]


def anvil_binary() -> Path:
    for candidate in sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    sys.exit("anvil is not installed: run `npm ci` in tests/peers (@foundry-rs/anvil)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_anvil(*extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "8453"]
    proc = subprocess.Popen(
        [*args, "--disable-code-size-limit", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    for _ in range(200):
        try:
            if w3.eth.chain_id == 8453:
                return proc, url
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    sys.exit("anvil did not start")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def chain(url: str) -> tuple[Any, Any, Any]:
    from eth_account import Account
    from web3 import Web3

    from imagemint_dev.embedded.zora_deploy import deploy_zora_stack

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    deployer, signer = Account.create(), Account.create()
    for account in (deployer, signer):
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10_000 * 10**18)])
    return w3, deploy_zora_stack(w3, deployer), signer


def rpc_env(url: str, addresses: Any, signer: Any) -> dict[str, str]:
    """The local runtime's settings to mint on the anvil at ``url`` (``chain_mode=rpc``)."""
    return {
        "IMAGEMINT_CHAIN_MODE": "rpc",
        "IMAGEMINT_CHAIN_RPC_URL": url,
        "IMAGEMINT_CHAIN_ID": "8453",
        "IMAGEMINT_ZORA_FACTORY_ADDRESS": addresses.factory,
        "IMAGEMINT_SIGNER_KEY": signer.key.hex(),
        "IMAGEMINT_CHAIN_MAX_FEE_GWEI": "100",
    }


def minter(w3: Any, addresses: Any, signer: Any, **options: Any) -> Any:
    from imagemint.adapters.chain.zora import ZoraMinter

    return ZoraMinter(
        w3,
        factory_address=addresses.factory,
        signer=signer,
        chain_id=8453,
        max_fee_gwei=100,
        max_priority_fee_gwei=1,
        gas_limit_cap=10_000_000,
        poll_latency_s=0.01,
        receipt_timeout_s=30,
        **options,
    )


# ------------------------------------------------------------------------------------------ gas


def gas_table(rounds: int) -> list[tuple[str, int, float]]:
    from imagemint.adapters.chain.abi import OPEN_EDITION_SUPPLY

    proc, url = start_anvil()
    try:
        w3, addresses, signer = chain(url)
        m = minter(w3, addresses, signer)
        creator = m.signer.address
        contract = m.ensure_contract(creator, None, "gas bench")
        m.mint_many(contract, [(uri(), creator)])  # the contract has tokens: steady state from here
        token = m._token_contract(contract)  # noqa: SLF001 - the bench encodes calldata with its ABI
        rows: list[tuple[str, int, float]] = []

        # Recoup's flow: a new contract per image, the token set up and minted in its setup actions.
        gas = []
        for i in range(rounds):
            actions = [
                token.encode_abi("setupNewToken", args=[uri(), OPEN_EDITION_SUPPLY]),
                token.encode_abi("adminMint", args=[creator, 1, 1, b""]),
            ]
            data = m._factory.encode_abi(  # noqa: SLF001 - the bench encodes calldata with its ABI
                "createContractDeterministic",
                args=[
                    uri(),  # the contract's own metadata, as real-length as the token's
                    f"recoup image {i} {secrets.token_hex(4)}",
                    (0, 0, creator),
                    creator,
                    [bytes.fromhex(a[2:]) for a in actions],
                ],
            )
            gas.append(int(m.tx.transact(addresses.factory, data, "createContract")["gasUsed"]))
        rows.append(("Recoup: a new contract per image", 1, statistics.mean(gas)))

        # Two transactions on the creator's contract.
        gas = []
        for _ in range(rounds):
            outcome = minter(w3, addresses, signer, batch=False).mint_detailed(uri(), creator, contract)
            gas.append(outcome.gas_used)
        rows.append(("two transactions: setupNewToken, adminMint", 1, statistics.mean(gas)))

        # Ours: one multicall with 1, 4, 10 moments.
        for n in (1, 4, 10):
            gas = []
            for _ in range(rounds):
                outcomes = m.mint_many(contract, [(uri(), creator) for _ in range(n)])
                gas.append(outcomes[0].costs[0]["gas_used"] / n)
            rows.append((f"one multicall, {n} pending", n, statistics.mean(gas)))
        return rows
    finally:
        stop(proc)


def print_gas(rows: list[tuple[str, int, float]]) -> None:
    print("\ngas per moment (anvil, real Zora 1155 contracts, ar:// + 43-character URIs)")
    print(f"{'flow':48} {'gas/moment':>11} {'target':>9}")
    for name, n, gas in rows:
        target = TARGETS.get(n) if name.startswith("one multicall") else None
        mark = "" if target is None else (f"{target:>9,}" + ("  ok" if gas <= target else "  OVER"))
        print(f"{name:48} {gas:>11,.0f} {mark}")


# ----------------------------------------------------------------------------------- throughput


def throughput(clients: int, seconds: float, rate: float = 0.0) -> None:
    from imagemint.adapters.chain.abi import CREATOR_1155_ABI
    from imagemint_dev.local.runtime import start

    proc, url = start_anvil("--block-time", "2")
    rt = None
    try:
        w3, addresses, signer = chain(url)
        env = {
            **rpc_env(url, addresses, signer),
            "IMAGEMINT_ARCHIVE_MODE": "embedded",  # signed items kept in the bucket: a moment needs them
            "IMAGEMINT_RATE_LIMIT_RPM": "100000",
            "IMAGEMINT_RATE_LIMIT_CONCURRENCY": "1000",
        }
        rt = start(
            port=0,
            state_dir=Path(
                os.environ.get("GASBENCH_STATE") or tempfile.mkdtemp(prefix="imagemint-gasbench-")
            ),
            extra_env=env,
        )
        key = rt.account["api_key"]
        accepted: dict[str, float] = {}
        stop_at = time.monotonic() + seconds
        lock = threading.Lock()

        began = time.monotonic()

        def client(i: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                if rate > 0:  # an offered load: request k of all clients goes out at k * 60 / rate s
                    at = began + (n * clients + i) * 60.0 / rate
                    if at >= stop_at:
                        break
                    time.sleep(max(0.0, at - time.monotonic()))
                n += 1
                body = json.dumps(
                    {
                        "prompt": f"tp {i} {n}",
                        "model": "gpt-image-2",
                        "size": "1024x1024",
                        "mint": True,
                        "archive": True,
                    }
                ).encode()
                req = urllib.request.Request(
                    f"{rt.base_url}/v1/images/generations",
                    data=body,
                    method="POST",
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": "application/json",
                        "Prefer": "respond-async",
                    },
                )
                with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - our own 127.0.0.1
                    job = json.loads(resp.read())["job_id"]
                with lock:
                    accepted[job] = time.time()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        from imagemint.wiring import get_deps

        jobs = get_deps().jobs
        deadline = time.monotonic() + 180
        done: dict[str, Any] = {}
        while len(done) < len(accepted) and time.monotonic() < deadline:
            for job_id in accepted:
                if job_id not in done:
                    job = jobs.get(job_id)
                    if job is not None and job.status in ("SUCCEEDED", "PARTIAL", "FAILED"):
                        done[job_id] = job
            time.sleep(0.5)
        first_seen: dict[str, int] = {}
        for j in done.values():
            first_seen[j.status] = first_seen.get(j.status, 0) + 1
        # A PARTIAL job's moment may still be queued: the batch that mints it completes the job
        # (imagemint.domain.steps.complete_late_moment). Read the jobs again until nothing moves.
        settle_by, last = time.monotonic() + 90, None
        while time.monotonic() < settle_by:
            done = {job_id: jobs.get(job_id) or job for job_id, job in done.items()}
            now = sorted((k, j.status, bool(getattr(j, "moment", None))) for k, j in done.items())
            if now == last and not any(j.status == "RUNNING" for j in done.values()):
                break
            last = now
            time.sleep(3)
        minted = [j for j in done.values() if getattr(j, "moment", None)]
        end = max((t.updated_at for t in minted), default=time.time())
        latencies = sorted(j.updated_at - accepted[j.job_id] for j in minted)
        statuses: dict[str, int] = {}
        for j in done.values():
            statuses[j.status] = statuses.get(j.status, 0) + 1
        keys = [(j.moment["contractAddress"], j.moment["tokenId"]) for j in minted]
        hashes: dict[str, int] = {}
        gas = 0
        for j in minted:
            for tx in (getattr(j, "mint_cost", None) or {}).get("transactions", []):
                if tx["hash"] not in hashes:
                    hashes[tx["hash"]] = tx.get("moments", 1)
                    gas += int(tx["gas_used"])
        contracts = {c for c, _ in keys}
        uris: dict[str, int] = {}
        for c in contracts:
            token = w3.eth.contract(address=c, abi=CREATOR_1155_ABI)
            for t in range(1, int(token.functions.nextTokenId().call())):
                u = token.functions.uri(t).call()
                uris[u] = uris.get(u, 0) + 1
        twice = sum(1 for v in uris.values() if v > 1)
        if twice:
            print("  URIs on more than one token:", [u for u, v in uris.items() if v > 1][:3])
        latest = w3.eth.get_transaction_count(signer.address, "latest")
        pending = w3.eth.get_transaction_count(signer.address, "pending")
        minutes = (end - t0) / 60
        offered = (
            f", offered {rate:g} jobs/minute" if rate > 0 else " (each posting as fast as it is answered)"
        )
        print(
            f"\nthroughput: {clients} clients for {seconds:g} s{offered}, anvil --block-time 2, local runtime"
        )
        print(f"  jobs accepted {len(accepted)}, finished {len(done)}: {first_seen} when first finished")
        late = sum(1 for j in done.values() if getattr(j, "resumed_from", None) == "late_moment")
        print(f"  after the queues drained: {statuses}; {late} PARTIAL jobs completed by a later batch")
        failed = [j for j in done.values() if j.status != "SUCCEEDED"]
        reasons: dict[str, int] = {}
        for j in failed:
            err = j.provenance_error or j.error or {}
            why = f"{j.status} {j.resume_from or ''} {err.get('message', '')[:90]}"
            reasons[why] = reasons.get(why, 0) + 1
        for why, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {count} x {why}")
        print(
            f"  moments minted {len(minted)} in {end - t0:.1f} s: {len(minted) / minutes:.1f} moments/minute"
        )
        if latencies:
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            print(f"  accepted -> moment recorded: p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s")
        if hashes:
            print(
                f"  transactions {len(hashes)} (moments per tx {len(minted) / len(hashes):.1f}), "
                f"gas per moment {gas / max(1, len(minted)):,.0f}"
            )
        print(
            f"  nonce gaps left: {pending - latest} (latest {latest}, pending {pending}); "
            f"tokens minted twice: {len(keys) - len(set(keys))} ids, {twice} uris"
        )
    finally:
        if rt is not None:
            rt.stop()
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered jobs per minute (0: clients post flat out)"
    )
    args = parser.parse_args()
    print_gas(gas_table(args.rounds))
    if args.throughput:
        throughput(args.clients, args.seconds, args.rate)


if __name__ == "__main__":
    main()
