"""``imagemint``: serve the API locally, generate an image, manage accounts.

    imagemint serve [--host 127.0.0.1] [--port 3000] [--state-dir DIR] [--no-demo]
    imagemint generate "PROMPT" [--out DIR] [--model M] [--n N] [--size WxH]
    imagemint accounts create --name N [--credits C]

``accounts`` talks to the running local runtime (its ``--state-dir``), or to
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


def cmd_serve(args: argparse.Namespace) -> int:
    from imagemint.local.runtime import start

    _err("imagemint: starting the local runtime (moto + in-process functions) ...")
    rt = start(host=args.host, port=args.port, state_dir=Path(args.state_dir) if args.state_dir else None)
    info = rt.account
    _err(f"imagemint: ready in {rt.started_in_s:.2f} s")
    print(f"base_url:   {rt.base_url}", flush=True)
    print(f"account_id: {info['account_id']}", flush=True)
    print(f"api_key:    {info['api_key']}", flush=True)
    print(f"written to  {rt.stack.state_dir / 'dev-account.json'}", flush=True)
    if not args.no_demo:
        _demo(rt.base_url, info["account_id"], rt.stack.state_dir)
    print(f"try: curl -s '{rt.base_url}/api/content/templates'", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    _err("imagemint: stopping")
    rt.stop()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from imagemint.local.runtime import start

    _err("[1/3] starting the local runtime ...")
    with start(port=0, state_dir=Path(args.state_dir) if args.state_dir else None) as rt:
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
    from imagemint.deps import get_deps, reset_deps
    from imagemint.settings import reset_settings

    if not args.aws:
        state_dir = Path(args.state_dir) if args.state_dir else None
        if state_dir is None:
            from imagemint.local.stack import find_root

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
    from imagemint import auth

    deps = _account_deps(args)
    account, key = auth.create_account(deps.accounts, deps.settings, name=args.name, credits=args.credits)
    print(json.dumps({"account_id": account.account_id, "api_key": key}))
    return 0


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
    g.add_argument("--model", default="gpt-image-1")
    g.add_argument("--n", type=int, default=1)
    g.add_argument("--size", default=None)
    g.add_argument("--state-dir", default=None)
    g.set_defaults(func=cmd_generate)

    a = sub.add_parser("accounts", help="manage accounts")
    asub = a.add_subparsers(dest="accounts_cmd", required=True)
    ac = asub.add_parser("create", help="create an account and its first API key")
    ac.add_argument("--name", required=True)
    ac.add_argument("--credits", type=int, default=0)
    ac.add_argument("--state-dir", default=None)
    ac.add_argument("--aws", action="store_true", help="use real AWS (the usual AWS configuration)")
    ac.add_argument("--stack-name", default=None)
    ac.set_defaults(func=cmd_accounts_create)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
