"""``imagemint doctor``: what a deployment (or the running local runtime) is configured to do.

    imagemint doctor [--state-dir DIR]                 the running local runtime (its moto SSM)
    imagemint doctor --aws --stack-name S              a deployed stack (the usual AWS configuration)

It reads the configuration in force (locally the runtime's ``runtime.json``; in AWS every function's
environment, from the stack's resources), then reads each secret parameter that configuration
needs, the way the functions read it (SSM SecureString with decryption, or a Secrets Manager secret
for a ``secret:`` name), and reports:

* every parameter: ``ok``, ``missing``, ``unreadable`` (AccessDenied, KMS, throttling: the error
  code), ``empty`` or ``invalid`` (not a JWK, not a private key, not PEM); values are never printed;
* the modes in force (``provider_mode``, ``archive_mode``, ``chain_mode``, ``sign_mode``);
* what each endpoint will do with that configuration.

The exit status is 1 when a parameter the configuration needs is not ``ok``, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK = "ok"
PEM = re.compile(r"-----BEGIN [A-Z ]+-----")
HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass
class Check:
    name: str  # what the parameter holds
    variable: str  # the IMAGEMINT_* variable naming it
    parameter: str  # its name ("" when the variable is unset)
    needed: bool  # the configuration cannot work without it
    status: str = OK  # ok | missing | unreadable | empty | invalid | not configured
    detail: str = ""


@dataclass
class Report:
    target: str
    modes: dict[str, str]
    checks: list[Check]
    endpoints: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status == OK for c in self.checks if c.needed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "modes": self.modes,
            "parameters": [asdict(c) for c in self.checks],
            "endpoints": [{"endpoint": e, "does": d} for e, d in self.endpoints],
        }


# ---------------------------------------------------------------- the configuration in force


def local_config(state_dir: Path) -> tuple[dict[str, str], Any]:
    """The running local runtime's IMAGEMINT_* settings and a boto3 session factory for its moto."""
    rt_file = state_dir / "runtime.json"
    if not rt_file.exists():
        raise SystemExit(
            f"error: no local runtime found in {state_dir} (start `imagemint serve`, or pass --aws)"
        )
    info = json.loads(rt_file.read_text())

    def client(service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=info["aws_endpoint_url"],
            region_name=info["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
        )

    return dict(info["env"]), client


def aws_config(stack_name: str) -> tuple[dict[str, str], Any]:
    """Every function's environment in ``stack_name`` (merged) and a boto3 client factory."""
    import boto3

    def client(service: str) -> Any:
        return boto3.client(service)

    cfn, lam = client("cloudformation"), client("lambda")
    env: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for res in page["StackResourceSummaries"]:
            if res["ResourceType"] == "AWS::Lambda::Function":
                conf = lam.get_function_configuration(FunctionName=res["PhysicalResourceId"])
                env.update((conf.get("Environment") or {}).get("Variables") or {})
    if not env:
        raise SystemExit(f"error: stack {stack_name} has no functions")
    return {k: v for k, v in env.items() if k.startswith("IMAGEMINT_")}, client


# ---------------------------------------------------------------- reading parameters


def _read(client: Any, name: str) -> tuple[str, str | None]:
    """(status, value) of one parameter, read as the functions read it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if name.startswith("secret:"):
            r = client("secretsmanager").get_secret_value(SecretId=name.removeprefix("secret:"))
            value = r.get("SecretString")
        else:
            value = client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ParameterNotFound", "ResourceNotFoundException"):
            return "missing", None
        return "unreadable", code or "error"
    except BotoCoreError as exc:
        return "unreadable", type(exc).__name__
    if value is None or not str(value).strip():
        return "empty", None
    return OK, str(value)


def _valid(kind: str, value: str) -> str:
    """'' when ``value`` looks like a ``kind`` (never echoing it), else why not."""
    if kind == "wallet":
        try:
            jwk = json.loads(value)
        except json.JSONDecodeError:
            return "not a JWK JSON object"
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not all(jwk.get(f) for f in "ned"):
            return "not an RSA JWK with n, e and d"
    elif kind == "signer":
        if not HEX_KEY.match(value.strip()):
            return "not a 32-byte hex private key"
    elif kind == "pem" and not PEM.search(value):
        return "not PEM"
    return ""


def _checks(env: dict[str, str]) -> list[Check]:
    """The parameters this configuration reads, and whether it cannot work without each."""
    provider = env.get("IMAGEMINT_PROVIDER_MODE", "auto")
    archive = env.get("IMAGEMINT_ARCHIVE_MODE", "embedded")
    chain = env.get("IMAGEMINT_CHAIN_MODE", "embedded")
    sign = env.get("IMAGEMINT_SIGN_MODE", "off")
    providers = provider in ("live", "auto")  # auto: optional (offline without a key)
    wanted = [
        ("API key hashing secret", "IMAGEMINT_KEY_HASH_SECRET_PARAM", True, True),
        ("OpenAI API key", "IMAGEMINT_OPENAI_API_KEY_PARAM", providers, provider == "live"),
        ("fal key", "IMAGEMINT_FAL_KEY_PARAM", providers, provider == "live"),
        ("Arweave wallet (JWK)", "IMAGEMINT_ARWEAVE_WALLET_PARAM", archive == "arweave", True),
        ("minting signer key", "IMAGEMINT_SIGNER_KEY_PARAM", chain == "rpc", True),
        ("C2PA certificate chain", "IMAGEMINT_C2PA_CERT_CHAIN_PARAM", sign == "c2pa", True),
        ("C2PA private key", "IMAGEMINT_C2PA_PRIVATE_KEY_PARAM", sign == "c2pa", True),
    ]
    return [Check(name, var, env.get(var, ""), needed) for name, var, used, needed in wanted if used]


def _kind(var: str) -> str:
    return {
        "IMAGEMINT_ARWEAVE_WALLET_PARAM": "wallet",
        "IMAGEMINT_SIGNER_KEY_PARAM": "signer",
        "IMAGEMINT_C2PA_CERT_CHAIN_PARAM": "pem",
        "IMAGEMINT_C2PA_PRIVATE_KEY_PARAM": "pem",
    }.get(var, "text")


def diagnose(env: dict[str, str], client: Any, target: str) -> Report:
    checks = _checks(env)
    for c in checks:
        if not c.parameter:
            c.status, c.detail = "not configured", f"{c.variable} is not set"
            continue
        status, value = _read(client, c.parameter)
        c.status = status
        if status == "unreadable":
            c.detail = f"{value}"
        elif status == OK and value is not None:
            problem = _valid(_kind(c.variable), value)
            if problem:
                c.status, c.detail = "invalid", problem
    modes = {
        "provider_mode": env.get("IMAGEMINT_PROVIDER_MODE", "auto"),
        "archive_mode": env.get("IMAGEMINT_ARCHIVE_MODE", "embedded"),
        "chain_mode": env.get("IMAGEMINT_CHAIN_MODE", "embedded"),
        "sign_mode": env.get("IMAGEMINT_SIGN_MODE", "off"),
        "legacy_require_key": env.get("IMAGEMINT_LEGACY_REQUIRE_KEY", "false"),
    }
    report = Report(target, modes, checks)
    report.endpoints = endpoints(env, modes, {c.variable: c for c in checks})
    return report


# ---------------------------------------------------------------- what each endpoint will do


def _provider_line(modes: dict[str, str], checks: dict[str, Check], provider: str, var: str) -> str:
    mode = modes["provider_mode"]
    if mode == "offline":
        return f"{provider} models run on the offline provider (ProviderMode offline)"
    c = checks.get(var)
    if c is not None and c.status == OK:
        return f"{provider} models run on {provider}"
    name = c.parameter if c is not None and c.parameter else var
    if mode == "live":
        return f"{provider} models answer 503 provider_unavailable naming {name}; nothing is charged"
    return f"{provider} models run on the offline provider (no key in {name}; every answer warns)"


def _step_line(what: str, mode: str, check: Check | None, error: str) -> str:
    if mode == "off":
        return f"{what}: off (a job asking for it ends PARTIAL)"
    if mode == "embedded":
        return f"{what}: embedded (local runtime only)"
    if mode == "inprocess":  # no parameter: In Process's HTTP API creates the moment and pays the gas
        return f"{what}: inprocess (In Process's API creates the moments; no signer key)"
    if check is not None and check.status == OK:
        return f"{what}: {mode}"
    name = check.parameter if check is not None and check.parameter else "its parameter"
    return f"{what}: fails ({error}, reason config, naming {name}); images kept, job PARTIAL and resumable"


def endpoints(env: dict[str, str], modes: dict[str, str], checks: dict[str, Check]) -> list[tuple[str, str]]:
    from imagemint.domain import registry

    default = env.get("IMAGEMINT_DEFAULT_MODEL") or "gpt-image-2"
    spec = registry.MODELS.get(default)
    default_provider = spec.provider if spec is not None else "openai"
    openai = _provider_line(modes, checks, "OpenAI", "IMAGEMINT_OPENAI_API_KEY_PARAM")
    fal = _provider_line(modes, checks, "fal", "IMAGEMINT_FAL_KEY_PARAM")
    gen = openai if default_provider == "openai" else fal
    wallet = checks.get("IMAGEMINT_ARWEAVE_WALLET_PARAM")
    archive = _step_line("archive", modes["archive_mode"], wallet, "archive_failed")
    mint = _step_line("mint", modes["chain_mode"], checks.get("IMAGEMINT_SIGNER_KEY_PARAM"), "mint_failed")
    secret = checks.get("IMAGEMINT_KEY_HASH_SECRET_PARAM")
    auth = ""
    if secret is not None and secret.status != OK:
        auth = f"; every API key is refused (500: {secret.parameter or secret.variable} {secret.status})"
    keyless = "key optional" if modes["legacy_require_key"] != "true" else "key required"
    return [
        ("GET /api/image/generate", f"{default} ({keyless}): {gen}; {archive}; {mint}{auth}"),
        ("POST /api/content/image", f"{fal}; archive/mint only when asked{auth}"),
        ("POST /v1/images/generations, /api/images/generations", f"{openai}; {fal}{auth}"),
        ("POST /v1/images/edits", f"{openai}; {fal}{auth}"),
        ("POST /action/generate_image", f"{default}: {gen}{auth}"),
        ("GET /v1/models, /api/content/templates", "answer from the registry (no parameter needed)"),
        ("GET /api/jobs/{id}, POST .../resume", f"the owner's job; resume re-runs archive/mint{auth}"),
        ("GET /api/files/{job_id}/{name}", "302 to a fresh signed S3 URL"),
        ("S3 ingest/<account>/<name>", f"images: {archive}; {mint}. .json requests: {gen}"),
    ]


# ---------------------------------------------------------------- output


def render(report: Report) -> str:
    lines = [f"imagemint doctor: {report.target}", ""]
    lines.append("modes: " + ", ".join(f"{k}={v}" for k, v in report.modes.items()))
    lines.append("")
    w = max([len(c.parameter or c.variable) for c in report.checks] + [9])
    lines.append(f"{'parameter':<{w}}  {'status':<14} {'needed':<7} holds")
    for c in report.checks:
        detail = f" ({c.detail})" if c.detail else ""
        needed = "yes" if c.needed else "no"
        lines.append(f"{c.parameter or c.variable:<{w}}  {c.status:<14} {needed:<7} {c.name}{detail}")
    lines.append("")
    for endpoint, does in report.endpoints:
        lines.append(f"{endpoint}\n    {does}")
    lines.append("")
    bad = [c for c in report.checks if c.needed and c.status != OK]
    if bad:
        lines.append("NOT READY: " + "; ".join(f"{c.parameter or c.variable} {c.status}" for c in bad))
    else:
        lines.append("ready: every parameter this configuration needs is readable")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.aws:
        if not args.stack_name:
            raise SystemExit("error: --aws needs --stack-name")
        env, client = aws_config(args.stack_name)
        target = f"stack {args.stack_name}"
    else:
        state_dir = Path(args.state_dir) if args.state_dir else None
        if state_dir is None:
            from imagemint_dev.local.stack import find_root

            state_dir = find_root() / ".imagemint"
        env, client = local_config(state_dir)
        target = f"local runtime ({state_dir})"
    report = diagnose(env, client, target)
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report), flush=True)
    return 0 if report.ok else 1


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "doctor", help="missing or unreadable parameters, the modes in force, what each endpoint will do"
    )
    d.add_argument("--state-dir", default=None, help="the local runtime's (default: .imagemint/)")
    d.add_argument("--aws", action="store_true", help="a deployed stack (the usual AWS configuration)")
    d.add_argument("--stack-name", default=os.environ.get("IMAGEMINT_STACK_NAME"), help="with --aws")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_doctor)
