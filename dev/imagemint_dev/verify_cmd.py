"""``imagemint verify FILE|REF``: what ``GET /api/verify/{ref}`` says, for a person.

A FILE is read here first (its C2PA manifest, validated with the local runtime's
root and any ``--trust`` PEM as anchors); the job its manifest names is then
walked by the running local runtime (``--base-url``, default: the one
``.imagemint/dev-account.json`` names). A REF (job id, Arweave id,
``<chainId>:<contract>:<tokenId>``) is walked by the runtime directly.
Exit status 0 when every link holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    v = sub.add_parser("verify", help="check an image file or a ref (job, Arweave id, chain:contract:token)")
    v.add_argument("target", help="an image file, a job id, an Arweave id, or <chainId>:<contract>:<tokenId>")
    v.add_argument("--base-url", default=None, help="the API (default: the local runtime's)")
    v.add_argument("--state-dir", default=None, help="the local runtime's state dir (default .imagemint)")
    v.add_argument("--trust", action="append", default=[], help="a PEM file of extra trust anchors")
    v.add_argument("--json", action="store_true", help="print the verdict as JSON")
    v.set_defaults(func=cmd_verify)


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir)
    from imagemint_dev.local.stack import find_root

    return find_root() / ".imagemint"


def _base_url(args: argparse.Namespace, state: Path) -> str | None:
    if args.base_url:
        return str(args.base_url).rstrip("/")
    info = state / "dev-account.json"
    return json.loads(info.read_text()).get("base_url") if info.is_file() else None


def _read_file(path: Path, state: Path, trust: list[str]) -> dict[str, Any]:
    from imagemint.adapters.c2pa.signer import C2paCredentialReader
    from imagemint.adapters.net.sniff import sniff_media_type

    data = path.read_bytes()
    anchors = b"\n".join(p.read_bytes() for p in [state / "c2pa-root.pem", *map(Path, trust)] if p.is_file())
    report = C2paCredentialReader(anchors or None).read(data, sniff_media_type(data) or "image/png")
    return {
        "c2pa_state": report.state,
        "trusted": report.trusted,
        "digital_source_type": report.digital_source_type,
        "software_agent": report.software_agent,
        "claim_generator": report.claim_generator,
        "issuer": report.issuer,
        "manifest_label": report.manifest_label,
        "job_id": report.job_id,
        "failures": list(report.failures),
    }


def _walk(base_url: str, ref: str) -> tuple[int, dict[str, Any]]:
    url = f"{base_url}/api/verify/{urllib.parse.quote(ref, safe=':')}"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - a URL the user named
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def cmd_verify(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    out: dict[str, Any] = {}
    path = Path(args.target)
    ref = args.target
    if path.is_file():
        out["file"] = _read_file(path, state, args.trust)
        ref = out["file"]["job_id"]
    base = _base_url(args, state)
    if ref and base:
        status, verdict = _walk(base, ref)
        out["verdict"] = (
            verdict if status == 200 else {"ok": False, "error": verdict.get("error"), "status": status}
        )
    ok = (out.get("file", {}).get("trusted", True)) and bool(out.get("verdict", {}).get("ok", "file" in out))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0 if ok else 1
    if "file" in out:
        f = out["file"]
        print(
            f"file      {'ok ' if f['trusted'] else 'RED'}  C2PA {f['c2pa_state']}  "
            f"{f['digital_source_type'] or '-'}"
        )
        print(
            f"          by {f['software_agent'] or '-'} ({f['claim_generator'] or '-'}), "
            f"signed by {f['issuer'] or '-'}"
        )
        for code in f["failures"]:
            print(f"          failure: {code}")
    verdict = out.get("verdict")
    if verdict is None and "file" not in out:
        print("no local runtime to ask: pass --base-url")
    elif verdict is not None and "links" not in verdict:
        print(f"verify    RED  {verdict.get('error')} (HTTP {verdict.get('status')})")
    elif verdict is not None:
        print(f"job       {verdict['job_id']} ({verdict['model']})")
        for name, link in verdict["links"].items():
            if link is None:
                print(f"{name:9s} -    not part of this job")
                continue
            bad = [k for k, v in link["checks"].items() if not v]
            print(
                f"{name:9s} {'ok ' if link['ok'] else 'RED'}  "
                + (", ".join(bad) if bad else "every check holds")
            )
        print("chain     " + ("holds" if verdict["ok"] else "BROKEN"))
    return 0 if ok else 1
