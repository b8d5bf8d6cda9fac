"""``imagemint``: serve the API locally, generate an image, manage accounts.

    imagemint serve [--host 127.0.0.1] [--port 3000] [--state-dir DIR] [--no-demo]
    imagemint generate "PROMPT" [--out DIR] [--model M] [--n N] [--size WxH]
    imagemint models [--json]
    imagemint accounts create --name N [--credits C] [--plan P] [--wallet 0x..]
    imagemint accounts show ACCOUNT_ID [--ledger N]
    imagemint accounts credit ACCOUNT_ID --amount N [--note TEXT]
    imagemint keys create --account-id A [--name N] [--expires-in-days D | --expires-at ISO] [--rpm N]
                          [--concurrency N]
    imagemint keys revoke (--key KEY|- | --account-id A --prefix im_sk_XXXXXXXX)
    imagemint doctor [--aws --stack-name S] [--state-dir DIR] [--json]
    imagemint smoke [--stack-name S] [--base-url URL --api-key K] [--account-id A] [--json]

``accounts`` and ``keys`` talk to the running local runtime (its ``--state-dir``), or to
real AWS with ``--aws`` (tables and the key secret parameter from
``--stack-name``'s outputs or the ``IMAGEMINT_*`` variables).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _post(url: str, body: dict[str, Any], key: str, timeout: float = 300) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310 - our own local API
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - our own local API
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"error: HTTP {e.code}: {e.read().decode(errors='replace')}") from None


def _write_images(data: list[dict[str, Any]], out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, item in enumerate(data):
        raw = base64.b64decode(item["b64_json"])
        ext = "png" if raw[:4] == b"\x89PNG" else "jpeg" if raw[:2] == b"\xff\xd8" else "webp"
        p = out / f"{stem}-{i}.{ext}"
        p.write_bytes(raw)
        paths.append(p)
    return paths


def _demo(base_url: str, account_id: str, state_dir: Path) -> None:
    """One image generated, stored on the local Arweave store and minted, through the legacy endpoint."""
    from urllib.parse import quote

    _err("demo: GET /api/image/generate (generate -> archive -> mint) ...")
    t0 = time.perf_counter()
    prompt = "a neon koi fish swimming through a night city, synthwave poster"
    url = f"{base_url}/api/image/generate?prompt={quote(prompt)}&account_id={account_id}"
    with urllib.request.urlopen(url, timeout=300) as r:  # noqa: S310 - our own local API
        res = json.loads(r.read())
    out = state_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "koi.png"
    path.write_bytes(base64.b64decode(res["images"][0]["base64"]))
    _err(f"demo: done in {time.perf_counter() - t0:.2f} s")
    print(f"demo image: {path}", flush=True)
    print(
        f"  stored:   {res.get('imageUrl')}  (arweave id {(res.get('arweaveResult') or {}).get('id')})",
        flush=True,
    )
    moment = res.get("moment") or {}
    print(
        f"  minted:   token {moment.get('tokenId')} of {moment.get('contractAddress')} on chain "
        f"{moment.get('chainId')} (tx {moment.get('hash')})",
        flush=True,
    )
    for w in res.get("warnings") or []:
        _err(f"demo: warning: {w}")


_DEMO_HINT = (
    "set OPENAI_API_KEY to a valid key, or unset it to generate offline "
    "(IMAGEMINT_DEFAULT_MODEL picks the model; --no-demo skips this)"
)


def _demo_failure(exc: Exception) -> str:
    """One line: what the demo request answered (the API's own error message when there is one)."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            body = json.loads(exc.read() or b"{}")
        except (ValueError, OSError):
            body = {}
        message = body.get("error") if isinstance(body, dict) else None
        if isinstance(message, dict):
            message = message.get("message")
        return f"HTTP {exc.code}: {message or exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def cmd_serve(args: argparse.Namespace) -> int:
    from imagemint_dev.local.runtime import start

    _err("imagemint: starting the local runtime (moto + in-process functions) ...")
    state_dir = Path(args.state_dir) if args.state_dir else None
    # One line per request and our warnings here; everything else to <state dir>/debug.log.
    rt = start(host=args.host, port=args.port, state_dir=state_dir, console=sys.stderr)
    info = rt.account
    _err(f"imagemint: ready in {rt.started_in_s:.2f} s")
    print(f"base_url:   {rt.base_url}", flush=True)
    print(f"account_id: {info['account_id']}", flush=True)
    print(f"api_key:    {info['api_key']}", flush=True)
    print(f"written to  {rt.stack.state_dir / 'dev-account.json'}", flush=True)
    print(f"debug log:  {rt.debug_log}", flush=True)
    if not args.no_demo:
        try:
            _demo(rt.base_url, info["account_id"], rt.stack.state_dir)
        except Exception as exc:  # noqa: BLE001 - a failed demo never takes the server down
            _err(f"demo: failed ({_demo_failure(exc)}); {_DEMO_HINT}. Still serving.")
    print(f"try: curl -s '{rt.base_url}/api/content/templates'", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    _err("imagemint: stopping")
    rt.stop()
    return 0


def _default_model() -> str:
    from imagemint.settings import DEFAULT_MODEL

    return os.environ.get("IMAGEMINT_DEFAULT_MODEL") or DEFAULT_MODEL


def cmd_models(args: argparse.Namespace) -> int:
    """The models a request may name (what ``GET /v1/models`` lists), as a table or as that JSON."""
    from imagemint.domain.registry import catalogue

    entries = catalogue(default_model=_default_model())
    if args.json:
        print(json.dumps({"object": "list", "data": entries}, indent=2))
        return 0
    rows = [
        (
            "model",
            "status",
            "shutdown",
            "runs as",
            "sizes / ratios",
            "qualities",
            "formats",
            "n",
            "edits",
            "usd/image",
        )
    ]
    for e in entries:
        caps: dict[str, Any] = e["capabilities"]  # type: ignore[assignment]
        geometry = ",".join(caps.get("sizes") or caps.get("aspect_ratios") or [])
        if caps.get("custom_sizes"):
            geometry += ",WxH"
        price: dict[str, Any] = e["pricing"]  # type: ignore[assignment]
        per = price.get("usd_per_image_1024x1024") or price.get("usd_per_image")
        per_text = "/".join(f"{v:g}" for v in per.values()) if isinstance(per, dict) else f"{per:g}"
        rows.append(
            (
                str(e["id"]),
                str(e["status"]),
                str(e["shutdown_date"] or "-"),
                str(e["runs_as"]),
                geometry,
                ",".join(caps.get("qualities") or []) or "-",
                ",".join(caps.get("output_formats") or []) or "-",
                str(caps.get("max_n")),
                "yes" if caps.get("edits") else "no",
                per_text,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from imagemint_dev.local.runtime import start

    args.model = args.model or _default_model()
    _err("[1/3] starting the local runtime ...")
    with start(port=0, state_dir=Path(args.state_dir) if args.state_dir else None, console=sys.stderr) as rt:
        _err(f"[2/3] generating with {args.model} (n={args.n}, size={args.size}) ...")
        t0 = time.perf_counter()
        body = {"model": args.model, "prompt": args.prompt, "n": args.n, "response_format": "b64_json"}
        if args.size:
            body["size"] = args.size
        res = _post(f"{rt.base_url}/v1/images/generations", body, rt.account["api_key"])
        paths = _write_images(res["data"], Path(args.out), "image")
        _err(f"[3/3] done in {time.perf_counter() - t0:.2f} s (model {res.get('model')})")
        for w in res.get("warnings") or []:
            _err(f"warning: {w}")
        for p in paths:
            print(p)
    return 0


def _account_deps(args: argparse.Namespace) -> Any:
    from imagemint.settings import reset_settings
    from imagemint.wiring import get_deps, reset_deps

    if not args.aws:
        state_dir = Path(args.state_dir) if args.state_dir else None
        if state_dir is None:
            from imagemint_dev.local.stack import find_root

            state_dir = find_root() / ".imagemint"
        rt_file = state_dir / "runtime.json"
        if not rt_file.exists():
            raise SystemExit("error: no local runtime found (start `imagemint serve`, or pass --aws)")
        info = json.loads(rt_file.read_text())
        os.environ.update(info["env"])
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": info["aws_endpoint_url"],
                "AWS_REGION": info["region"],
                "AWS_DEFAULT_REGION": info["region"],
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
            }
        )  # noqa: S105
    elif args.stack_name:
        import boto3

        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0][
                "Outputs"
            ]
        }
        os.environ.setdefault("IMAGEMINT_JOBS_TABLE", outputs["JobsTableName"])
        os.environ.setdefault("IMAGEMINT_ACCOUNTS_TABLE", outputs["AccountsTableName"])
        os.environ.setdefault("IMAGEMINT_BUCKET", outputs["ImagesBucketName"])
        os.environ.setdefault("IMAGEMINT_KEY_HASH_SECRET_PARAM", "/imagemint/key-hash-secret")
    reset_settings()
    reset_deps()
    return get_deps()


def cmd_accounts_create(args: argparse.Namespace) -> int:
    from imagemint.domain import auth

    deps = _account_deps(args)
    account, key = auth.create_account(
        deps.accounts,
        deps.settings,
        name=args.name,
        credits=args.credits,
        plan=args.plan,
        wallet_address=args.wallet,
    )
    print(json.dumps({"account_id": account.account_id, "api_key": key}))
    return 0


def _iso(ts: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _key_view(record: Any, at: float) -> dict[str, Any]:
    status = "active"
    if record.revoked:
        status = "revoked"
    elif record.expires_at is not None and record.expires_at <= at:
        status = "expired"
    return {
        "prefix": record.prefix,
        "name": record.name,
        "status": status,
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "last_used_at": _iso(record.last_used_at),
        "rpm": record.rpm,
        "concurrency": record.concurrency,
    }


def cmd_accounts_show(args: argparse.Namespace) -> int:
    from imagemint.domain import credits, webhooks
    from imagemint.domain.models import now

    deps = _account_deps(args)
    account = deps.accounts.get_account(args.account_id)
    if account is None:
        raise SystemExit(f"error: no account {args.account_id}")
    keys, ledger = deps.accounts.list_account_items(account.account_id)
    at = now()
    jobs = [e for e in ledger if e.kind == "job"]
    out = {
        "account": {
            "account_id": account.account_id,
            "name": account.name,
            "plan": account.plan,
            "wallet_address": account.wallet_address,
            "credits": account.credits,
            "credits_usd": credits.usd(account.credits),
            "created_at": _iso(account.created_at),
            # verifies the signatures of this account's webhook events (imagemint.domain.webhooks)
            "webhook_secret": webhooks.secret_for(deps.settings, account.account_id),
        },
        "keys": [_key_view(k, at) for k in keys],
        "usage": {
            "jobs": len(jobs),
            "charged": sum(e.credits for e in jobs),
            "refunded": sum(e.refunded for e in jobs),
            "granted": sum(e.credits for e in ledger if e.kind == "grant"),
        },
        "ledger": [
            {
                **e.model_dump(exclude_none=True),
                "created_at": _iso(e.created_at),
                "refunded_at": _iso(e.refunded_at),
            }
            for e in ledger[-args.ledger :]
        ]
        if args.ledger > 0
        else [],
    }
    print(json.dumps(out, indent=2))
    return 0


def cmd_accounts_credit(args: argparse.Namespace) -> int:
    import uuid

    from imagemint.domain.models import LedgerEntry

    deps = _account_deps(args)
    entry = LedgerEntry(
        account_id=args.account_id,
        entry_id=f"grant-{uuid.uuid4()}",
        kind="grant",
        credits=args.amount,
        note=args.note,
    )
    try:
        balance = deps.accounts.grant(entry)
    except Exception as exc:  # domain errors: no such account, or a debit below zero
        raise SystemExit(f"error: {getattr(exc, 'message', exc)}") from None
    print(json.dumps({"account_id": args.account_id, "credits": balance, "entry_id": entry.entry_id}))
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from datetime import datetime

    from imagemint.domain import auth
    from imagemint.domain.models import now
    from imagemint.errors import NotFound

    expires_at = None
    if args.expires_in_days is not None:
        expires_at = now() + args.expires_in_days * 86400
    elif args.expires_at:
        parsed = datetime.fromisoformat(args.expires_at)
        if parsed.tzinfo is None:
            raise SystemExit("error: --expires-at needs a time zone, e.g. 2027-01-31T00:00:00+00:00")
        expires_at = parsed.timestamp()
    deps = _account_deps(args)
    try:
        key = auth.issue_key(
            deps.accounts,
            deps.settings,
            args.account_id,
            expires_at=expires_at,
            name=args.name,
            rpm=args.rpm,
            concurrency=args.concurrency,
        )
    except NotFound:
        raise SystemExit(f"error: no account {args.account_id}") from None
    print(
        json.dumps(
            {
                "account_id": args.account_id,
                "api_key": key,
                "prefix": key[: auth.PREFIX_CHARS],
                "expires_at": _iso(expires_at),
            }
        )
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from imagemint.domain import auth
    from imagemint.errors import NotFound

    deps = _account_deps(args)
    if args.key:
        key = sys.stdin.readline().strip() if args.key == "-" else args.key
        try:
            records = [auth.revoke_key(deps.accounts, deps.settings, key)]
        except NotFound:
            raise SystemExit("error: no such API key") from None
    else:
        if not (args.account_id and args.prefix):
            raise SystemExit("error: give --key, or --account-id and --prefix")
        found = auth.find_keys(deps.accounts, args.account_id, args.prefix)
        if len(found) != 1:
            raise SystemExit(f"error: {len(found)} keys of {args.account_id} start with {args.prefix}")
        from imagemint.domain.models import now

        revoked = deps.accounts.revoke_key(found[0].key_hash, now())
        records = [revoked] if revoked else []
    print(json.dumps({"revoked": [r.prefix for r in records]}))
    return 0


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None, help="the local runtime's (default: .imagemint/)")
    p.add_argument("--aws", action="store_true", help="use real AWS (the usual AWS configuration)")
    p.add_argument("--stack-name", default=None, help="with --aws: read table names from the stack")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imagemint", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="serve the API locally on the embedded default")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=3000)
    s.add_argument("--state-dir", default=None, help="default: .imagemint/ beside template.yaml")
    s.add_argument("--no-demo", action="store_true", help="skip the demo generation at start")
    s.set_defaults(func=cmd_serve)

    g = sub.add_parser("generate", help="generate one image through the local runtime")
    g.add_argument("prompt")
    g.add_argument("--out", default=".")
    g.add_argument(
        "--model", default=None, help="default: IMAGEMINT_DEFAULT_MODEL, else the built-in default"
    )
    g.add_argument("--n", type=int, default=1)
    g.add_argument("--size", default=None)
    g.add_argument("--state-dir", default=None)
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("models", help="the models a request may name (what GET /v1/models lists)")
    m.add_argument("--json", action="store_true", help="print GET /v1/models' JSON instead of a table")
    m.set_defaults(func=cmd_models)

    a = sub.add_parser("accounts", help="manage accounts")
    asub = a.add_subparsers(dest="accounts_cmd", required=True)
    ac = asub.add_parser("create", help="create an account and its first API key")
    ac.add_argument("--name", required=True)
    ac.add_argument("--credits", type=int, default=0)
    ac.add_argument("--plan", default="free")
    ac.add_argument("--wallet", default=None, help="the account's wallet address")
    _target(ac)
    ac.set_defaults(func=cmd_accounts_create)
    ash = asub.add_parser("show", help="an account: balance, keys (prefixes only), usage and ledger")
    ash.add_argument("account_id")
    ash.add_argument("--ledger", type=int, default=20, help="how many ledger lines (latest)")
    _target(ash)
    ash.set_defaults(func=cmd_accounts_show)
    acr = asub.add_parser("credit", help="add credits (negative: take back) with a ledger line")
    acr.add_argument("account_id")
    acr.add_argument("--amount", type=int, required=True, help="credits (1 credit = $0.001)")
    acr.add_argument("--note", default=None)
    _target(acr)
    acr.set_defaults(func=cmd_accounts_credit)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kc = ksub.add_parser("create", help="a new API key for an account (shown once)")
    kc.add_argument("--account-id", required=True)
    kc.add_argument("--name", default=None)
    exp = kc.add_mutually_exclusive_group()
    exp.add_argument("--expires-in-days", type=float, default=None)
    exp.add_argument("--expires-at", default=None, help="ISO 8601 with a time zone")
    kc.add_argument("--rpm", type=int, default=None, help="requests per minute (default: the deployment's)")
    kc.add_argument("--concurrency", type=int, default=None, help="concurrent generations")
    _target(kc)
    kc.set_defaults(func=cmd_keys_create)
    kr = ksub.add_parser("revoke", help="revoke a key, by its value or by its shown prefix")
    kr.add_argument("--key", default=None, help="the key, or - to read it from stdin")
    kr.add_argument("--account-id", default=None)
    kr.add_argument("--prefix", default=None)
    _target(kr)
    kr.set_defaults(func=cmd_keys_revoke)

    from imagemint_dev import doctor, smoke, verify_cmd

    doctor.add_parser(sub)
    smoke.add_parser(sub)
    verify_cmd.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
