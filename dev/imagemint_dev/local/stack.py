"""Create the template's resources in an in-process moto server and wire the real handlers to them."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagemint_dev import embedded
from imagemint_dev.local import iam, motoext, steady
from imagemint_dev.local.runner import InProcessFunction
from imagemint_dev.local.template import FunctionDef, Resolver, Route, Template

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "imagemint-local"
#: Where S3 object bodies are kept, under the state directory (emptied at each start and stop).
OBJECTS_DIR = "s3-objects"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_root(start: Path | None = None) -> Path:
    """The folder holding ``template.yaml``: the current one or a parent."""
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "template.yaml").is_file():
            return p
    raise FileNotFoundError("template.yaml not found in this folder or its parents")


def _dynamodb_backends() -> list[Any]:
    """moto's DynamoDB backend of this runtime's account and region."""
    from moto.backends import get_backend

    return [get_backend("dynamodb")[ACCOUNT][REGION]]


@dataclass
class LocalStack:
    root: Path
    state_dir: Path
    public_base_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    template: Template = field(init=False)
    functions: dict[str, InProcessFunction] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    aws_endpoint: str = ""
    names: dict[str, str] = field(default_factory=dict)
    _moto: Any = None
    _trimmer: Any = None
    _expirer: Any = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.template = Template.load(self.root / "template.yaml")
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # ---- lifecycle ----
    def start(self) -> LocalStack:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        motoext.install()
        steady.tune_allocator()  # before the server threads start (steady.py: memory left running)
        self._trimmer = steady.Trimmer().start()
        self._expirer = steady.Expirer(_dynamodb_backends).start()
        steady.keep_objects_in(self.state_dir / OBJECTS_DIR)  # S3 bodies on disk, not in the process
        iam.install(ACCOUNT)  # record each function's AWS calls (imagemint_dev.local.iam)
        embedded.install()  # archive_mode / chain_mode "embedded" (set below) build from here
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        self.aws_endpoint = f"http://127.0.0.1:{port}"
        base_env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",  # noqa: S105 - moto accepts any credentials
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MOTO_PORT": str(port),
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "IMAGEMINT_LOG_STREAM": "stderr",
        }
        self._saved_env = {k: os.environ.get(k) for k in base_env}
        os.environ.update(base_env)
        self._configure_moto()
        self._create_resources()
        return self

    def stop(self) -> None:
        """Stop, and forget every resource and cached client, so another runtime can start in this process."""
        import urllib.request

        from imagemint import wiring
        from imagemint.adapters.aws.client import client
        from imagemint.settings import reset_settings

        motoext.clear_functions()  # and any injected crashes
        iam.dump()  # when IMAGEMINT_DEV_IAM_RECORD_DIR is set: this process's calls, for the check
        if self._moto is not None:
            req = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", method="POST")  # noqa: S310
            urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - our own 127.0.0.1 moto server
            self._moto.stop()
            self._moto = None
            steady.keep_objects_in(None)
            shutil.rmtree(self.state_dir / OBJECTS_DIR, ignore_errors=True)
        if self._trimmer is not None:
            self._trimmer.stop()
            self._trimmer = None
        if self._expirer is not None:
            self._expirer.stop()
            self._expirer = None
        for name, value in self._saved_env.items():  # the process's environment as it was before start()
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        from aws_lambda_powertools.utilities import parameters

        from imagemint.domain import auth

        # Parameters (wallet, key secret) are cached per process: the next runtime's are new.
        for reset in (
            reset_settings,
            wiring.reset,
            client.cache_clear,
            parameters.clear_caches,
            auth.clear_secret_cache,
        ):
            reset()

    # ---- faults ----
    def function_name(self, function: str) -> str:
        """The deployed name of a template function, given its logical id (``MintStepFunction``) or name."""
        if function in self.functions:
            return self.functions[function].name
        for fn in self.functions.values():
            if fn.name == function:
                return fn.name
        raise KeyError(f"No function {function!r} in the template (logical ids: {sorted(self.functions)})")

    def inject_crash(self, function: str, *, after: bool, times: int = 1, skip: int = 0) -> None:
        """Kill the next ``times`` invocations of ``function`` (logical id or name) as Lambda would see it,
        after letting ``skip`` invocations run normally.

        ``after=False``: the runtime dies before the handler runs; ``after=True``:
        the handler runs to the end (its side effects happen) and the runtime
        dies before returning. The caller (Step Functions, Invoke) gets a
        function error with ``errorType`` ``Runtime.ExitError``. Covers every
        invocation that goes through Lambda (state machine tasks, Invoke, S3
        events), not the HTTP front's direct calls of API functions. Cleared by
        :meth:`stop` and :meth:`clear_crashes`.
        """
        motoext.inject_crash(self.function_name(function), after=after, times=times, skip=skip)

    def crash_count(self, function: str) -> int:
        """How many invocations of ``function`` were killed by :meth:`inject_crash`."""
        return motoext.crash_count(self.function_name(function))

    def clear_crashes(self) -> None:
        motoext.clear_crashes()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.aws_endpoint)

    def _configure_moto(self) -> None:
        import urllib.request

        cfg = {"stepfunctions": {"execute_state_machine": True}}
        req = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 moto server
            f"{self.aws_endpoint}/moto-api/config",
            data=json.dumps(cfg).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=5).read()  # noqa: S310 - our own 127.0.0.1 moto server

    # ---- resources ----
    def resolver(self) -> Resolver:
        """The template's intrinsics resolved to this runtime's names and ARNs (fills :attr:`names`)."""
        return self._resolver()

    def _resolver(self) -> Resolver:
        t = self.template
        refs: dict[str, str] = dict(t.parameter_defaults())
        attrs: dict[str, str] = {}
        for name in t.of_type("AWS::DynamoDB::Table"):
            refs[name] = self.names[name] = f"{STACK}-{name}"
            attrs[f"{name}.Arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{refs[name]}"
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::StackId": STACK_ID,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
        }
        for name, res in t.of_type("AWS::S3::Bucket").items():
            given = (res.get("Properties") or {}).get("BucketName")
            bucket = Resolver({}, {}, pseudo).resolve(given) if given else f"{STACK}-{name}".lower()
            refs[name] = self.names[name] = str(bucket)
            attrs[f"{name}.Arn"] = f"arn:aws:s3:::{refs[name]}"
        for name in t.of_type("AWS::Serverless::Function"):
            refs[name] = self.names[name] = f"{STACK}-{name}"
            attrs[f"{name}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{refs[name]}"
        for name in t.of_type("AWS::Serverless::StateMachine"):
            self.names[name] = f"{STACK}-{name}"
            refs[name] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.names[name]}"
            attrs[f"{name}.Name"] = self.names[name]
        for name in t.of_type("AWS::Serverless::LayerVersion"):
            refs[name] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1"
        for name in t.of_type("AWS::Serverless::HttpApi"):
            refs[name] = "local"
        for name in t.of_type("AWS::Logs::LogGroup"):
            refs[name] = f"{STACK}-{name}"
            attrs[f"{name}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{refs[name]}"
        return Resolver(refs, attrs, pseudo)

    def _create_resources(self) -> None:
        t = self.template
        r = self._resolver()
        ddb = self.client("dynamodb")
        for name, res in t.of_type("AWS::DynamoDB::Table").items():
            p = res["Properties"]
            ddb.create_table(
                TableName=self.names[name],
                KeySchema=p["KeySchema"],
                AttributeDefinitions=p["AttributeDefinitions"],
                BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"),
                **{k: p[k] for k in ("GlobalSecondaryIndexes",) if k in p},
            )
            if "TimeToLiveSpecification" in p:  # expired items deleted as DynamoDB does (steady.Expirer)
                ddb.update_time_to_live(
                    TableName=self.names[name], TimeToLiveSpecification=p["TimeToLiveSpecification"]
                )
        s3 = self.client("s3")
        for name in t.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=self.names[name])

        # One process holds every function, so their environments must agree.
        env: dict[str, str] = {}
        fdefs = t.functions()
        for fdef in fdefs.values():
            for k, v in r.resolve(fdef.environment).items():
                if k in env and env[k] != str(v):
                    raise ValueError(f"Functions disagree on {k}; the local runtime shares one environment")
                env[k] = str(v)
        env.update(
            {
                # The embedded defaults: a local signed Arweave store served by this runtime's
                # gateway route, and an in-process EVM with the Zora contracts.
                "IMAGEMINT_ARCHIVE_MODE": "embedded",
                "IMAGEMINT_CHAIN_MODE": "embedded",
                # Locally a model without a key runs on the offline provider (deployed: live, fail closed).
                "IMAGEMINT_PROVIDER_MODE": "auto",
                "IMAGEMINT_ARWEAVE_GATEWAY_URL": self.public_base_url,
                "IMAGEMINT_PUBLIC_BASE_URL": self.public_base_url,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            }
        )
        env.update(self.extra_env)
        self.env = env
        self._saved_env.update({k: os.environ.get(k) for k in env if k not in self._saved_env})
        os.environ.update(env)
        self._put_secrets(env)

        roles = self.client("iam")
        role = roles.create_role(RoleName="imagemint-local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = self.client("lambda")
        for name, fdef in fdefs.items():
            self._create_function(lam, role, name, fdef)

        for fname, props in t.s3_events():
            bucket = r.resolve(props["Bucket"])
            events = props["Events"] if isinstance(props["Events"], list) else [props["Events"]]
            config: dict[str, Any] = {"LambdaFunctionArn": self.functions[fname].arn, "Events": events}
            rules = (((props.get("Filter") or {}).get("S3Key") or {}).get("Rules")) or []
            if rules:
                config["Filter"] = {"Key": {"FilterRules": rules}}
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [config]}
            )

        sfn = self.client("stepfunctions")
        for name, res in t.of_type("AWS::Serverless::StateMachine").items():
            p = res["Properties"]
            definition = (self.root / p["DefinitionUri"]).read_text(encoding="utf-8")
            for k, v in r.resolve(p.get("DefinitionSubstitutions") or {}).items():
                definition = definition.replace("${" + k + "}", str(v))
            sfn.create_state_machine(
                name=self.names[name],
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/imagemint-local",
                type=p.get("Type", "STANDARD"),
            )
        self.routes = t.routes()

    def _put_secrets(self, env: dict[str, str]) -> None:
        """The key-hash secret (kept in the state dir) and any provider keys go into SSM, as in AWS."""
        ssm = self.client("ssm")
        secret_file = self.state_dir / "key-hash-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        params = {env.get("IMAGEMINT_KEY_HASH_SECRET_PARAM"): secret_file.read_text().strip()}
        wallet_file = self.state_dir / "arweave-wallet.json"
        if not wallet_file.exists():
            from imagemint.adapters.arweave.wallet import generate_wallet

            wallet_file.write_text(json.dumps(generate_wallet()))
            wallet_file.chmod(0o600)
        params[env.get("IMAGEMINT_ARWEAVE_WALLET_PARAM")] = wallet_file.read_text().strip()
        # Content Credentials: a local root CA and a signing leaf, made on first start, kept in the state dir.
        from imagemint_dev.c2pa_certs import Identity, make_identity

        identity = Identity.read(self.state_dir)
        if identity is None:
            identity = make_identity()
            identity.write(self.state_dir)
        params[env.get("IMAGEMINT_C2PA_CERT_CHAIN_PARAM")] = identity.chain_pem.decode()
        params[env.get("IMAGEMINT_C2PA_PRIVATE_KEY_PARAM")] = identity.key_pem.decode()
        for var, param_var in (
            ("OPENAI_API_KEY", "IMAGEMINT_OPENAI_API_KEY_PARAM"),
            ("FAL_KEY", "IMAGEMINT_FAL_KEY_PARAM"),
        ):
            if os.environ.get(var) and env.get(param_var):
                params[env[param_var]] = os.environ[var]
        for name, value in params.items():
            if name:
                ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def _create_function(self, lam: Any, role: str, name: str, fdef: FunctionDef) -> None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("README.txt", "Runs in-process through the imagemint local runtime.")
        fname = self.names[name]
        arn = lam.create_function(
            FunctionName=fname,
            Runtime="python3.12",
            Role=role,
            Handler=fdef.handler,
            Code={"ZipFile": buf.getvalue()},
            Timeout=fdef.timeout,
            MemorySize=fdef.memory,
        )["FunctionArn"]
        fn = InProcessFunction(fdef, fname, arn)
        self.functions[name] = fn
        motoext.register_function(fname, fn.invoke)

    def gateway(self, method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        """The local Arweave gateway: ``GET /<id>`` serves an archived item with its Content-Type."""
        import re

        m = re.fullmatch(r"/([A-Za-z0-9_-]{43})", path)
        if method not in ("GET", "HEAD") or m is None:
            return None
        from botocore.exceptions import ClientError

        try:
            bucket = self.env["IMAGEMINT_BUCKET"]
            obj = self.client("s3").get_object(Bucket=bucket, Key=f"arweave/{m.group(1)}")
        except ClientError:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        return 200, {"Content-Type": obj.get("ContentType") or "application/octet-stream"}, obj["Body"].read()

    # ---- accounts ----
    def dev_account(self, credits: int = 1000) -> dict[str, str]:
        """Create (or re-create with the same id and key) the dev account; write dev-account.json."""
        from imagemint.domain import auth
        from imagemint.settings import reset_settings
        from imagemint.wiring import get_deps, reset_deps

        reset_settings()
        reset_deps()
        deps = get_deps()
        path = self.state_dir / "dev-account.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        account, key = auth.create_account(
            deps.accounts,
            deps.settings,
            name="dev",
            credits=credits,
            account_id=old.get("account_id"),
            key=old.get("api_key"),
        )
        info = {"base_url": self.public_base_url, "account_id": account.account_id, "api_key": key}
        path.write_text(json.dumps(info, indent=2) + "\n")
        path.chmod(0o600)
        (self.state_dir / "runtime.json").write_text(
            json.dumps(
                {
                    "aws_endpoint_url": self.aws_endpoint,
                    "region": REGION,
                    "env": {
                        k: v
                        for k, v in self.env.items()
                        if k.startswith("IMAGEMINT_") and not k.endswith(("_SECRET", "_KEY"))
                    },
                    "started_at": time.time(),
                },
                indent=2,
            )
            + "\n"
        )
        return info
