"""Least privilege, proven by the code's own calls: record every AWS operation each template function
performs while its handler runs, and check each against that function's IAM policies as SAM deploys them.

Development tooling only (never deployed, never in a layer).

Recording
    :func:`install` (called by ``LocalStack.start``) wraps, once per process:

    * ``botocore.client.BaseClient._make_api_call``, the one method every
      boto3/botocore client call goes through (ours, and the clients
      Powertools creates for Parameters and Idempotency). **A botocore
      internal**: botocore is pinned by the lock, and
      ``tests/unit/test_iam_check.py`` fails loudly if the name moves.
    * ``botocore.signers.generate_presigned_url``: a presigned URL is used by
      someone else but authorised as its signer, so presigning ``get_object``
      counts as ``s3:GetObject`` for the function that signed.
    * Powertools' ``BaseProvider.get`` (its public extension point for
      parameter providers): in AWS every function has its own process and so
      its own parameter cache; here one process serves every function, so a
      value another function already fetched would hide this function's read.
      Every ``get`` therefore counts as the read it stands for (``ssm:GetParameter``,
      ``secretsmanager:GetSecretValue``), cache hit or not; for the same reason
      :func:`scope` empties the key-hash secret's process-wide memo
      (``imagemint.domain.auth.clear_secret_cache``) so that each invocation
      goes back through Powertools (its cache still answers: no extra call).
    * ``ThreadPoolExecutor.submit`` while a handler runs: work a handler hands to
      a pool runs in a copy of its context, so the pool's calls are the
      function's (threads started with ``threading.Thread`` are not followed:
      none of our handlers calls AWS from one).

    :func:`scope` (entered by ``InProcessFunction.invoke`` around the cold
    import and the handler) names the template function whose handler runs in
    this thread (a context variable); calls made outside any scope (tests,
    the runtime setting itself up, moto's own plumbing) are not recorded.
    Each call becomes one or more :class:`Call` (IAM action + resource ARN):
    ``TransactWriteItems`` is authorised per item (``PutItem``, ``UpdateItem``,
    ``DeleteItem``, ``ConditionCheckItem`` on each item's table), ``HeadObject``
    as ``s3:GetObject``, ``ListObjectsV2`` as ``s3:ListBucket`` on the bucket,
    a ``Query`` on an index as ``table/NAME/index/INDEX``, and so on.

Checking
    :func:`function_policies` translates ``template.yaml`` offline with
    ``aws-sam-translator`` (SAM policy templates expanded, exactly as
    ``tests/unit/test_template.py`` does), takes each function's role's
    inline policies and resolves their intrinsics to the local runtime's
    names. :func:`check` evaluates every recorded call against them (an
    explicit Deny wins; an Allow whose Action and Resource match, with IAM's
    ``*`` and ``?`` wildcards, grants; conditions are not evaluated) and lists
    the grants no call used. Managed policies (AWSLambdaBasicExecutionRole,
    X-Ray) are not evaluated: the handlers make no such calls through botocore.

Across processes: when ``IMAGEMINT_DEV_IAM_RECORD_DIR`` is set, every
``LocalStack.stop`` writes this process's recording there (``calls-<pid>.json``,
see :func:`dump`), so runtimes served by ``imagemint serve`` subprocesses are
counted too (:func:`load_dir`).
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where every botocore client call goes (module, class, method): a botocore internal.
BOTOCORE_HOOK = ("botocore.client", "BaseClient", "_make_api_call")
#: The method botocore attaches to S3 clients as ``generate_presigned_url``.
PRESIGN_HOOK = ("botocore.signers", "generate_presigned_url")
#: Powertools' parameter providers all read through this method.
POWERTOOLS_HOOK = ("aws_lambda_powertools.utilities.parameters.base", "BaseProvider", "get")
RECORD_DIR_ENV = "IMAGEMINT_DEV_IAM_RECORD_DIR"
DEFAULT_ACCOUNT = "123456789012"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("imagemint_iam_function", default=None)
_lock = threading.Lock()
_records: dict[str, dict[Call, int]] = {}
_captures: list[dict[str, dict[Call, int]]] = []
_installed = False
_account = DEFAULT_ACCOUNT


@dataclass(frozen=True, order=True)
class Call:
    """One authorisation AWS makes for an API call: ``action`` on ``resource``, for API ``api``."""

    action: str  # IAM action: "dynamodb:UpdateItem"
    resource: str  # ARN, or "*" for actions without a resource
    api: str  # the API operation made: "dynamodb.TransactWriteItems"


# ------------------------------------------------------------------ recording


@contextmanager
def scope(function: str) -> Iterator[None]:
    """Attribute the AWS calls made in this thread (and the pools it submits to) to ``function``."""
    token = _current.set(function)
    try:
        _forget_process_wide_secret()
        yield
    finally:
        _current.reset(token)


def current_function() -> str | None:
    return _current.get()


def _forget_process_wide_secret() -> None:
    import sys

    auth = sys.modules.get("imagemint.domain.auth")
    if auth is not None:
        auth.clear_secret_cache()


#: Parts of a resource ARN that name one object among many alike: a UUID (a job, an account, an
#: execution), a 43-character Arweave id. See :class:`_Calls`.
_ONE_OF_MANY = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
)


class _Calls(dict):  # type: ignore[type-arg]
    """One function's record: call -> how many times; a call like one already recorded counts as that one.

    Every generation names new objects (``images/<job id>/0.png``, ``arweave/<id>``, an execution):
    recorded one by one, a server left running kept a few KB more per generation for ever. A call
    whose action, API and resource match a recorded call's once each such id is blanked out
    (:data:`_ONE_OF_MANY`) is counted on that first call instead: a policy grants or denies all
    objects of one shape alike (no statement names one job), so the check sees the same.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shapes: dict[tuple[str, str, str], Call] = {}

    def add(self, call: Call) -> None:
        if call not in self:
            shape = (call.action, call.api, _ONE_OF_MANY.sub("*", call.resource))
            call = self.shapes.setdefault(shape, call)
        self[call] = self.get(call, 0) + 1


def _add(function: str, calls: list[Call]) -> None:
    with _lock:
        # Inside capture() the calls are the block's alone (a unit test's made-up resources never
        # reach the process-wide record that the integration session checks).
        for target in _captures or [_records]:
            per_fn = target.get(function)
            if per_fn is None:
                per_fn = target[function] = _Calls()
            for c in calls:
                per_fn.add(c)


def record(function: str, service: str, operation: str, params: dict[str, Any], region: str) -> None:
    """Record one API call made by ``function`` (the hooks call this; tests may too)."""
    try:
        calls = calls_for(service, operation, params, region, _account)
    except Exception:  # a call shaped unlike the mapping expects: kept, on "*", never breaking the handler
        calls = [Call(f"{_IAM_PREFIX.get(service, service)}:{operation}", "*", f"{service}.{operation}")]
    _add(function, calls)


def recorded() -> dict[str, dict[Call, int]]:
    """Everything recorded in this process: function logical id -> call -> how many times."""
    with _lock:
        return {fn: dict(calls) for fn, calls in _records.items()}


def clear() -> None:
    with _lock:
        _records.clear()


@contextmanager
def capture() -> Iterator[dict[str, dict[Call, int]]]:
    """Collect the calls recorded while the block runs (instead of the process-wide record)."""
    mine: dict[str, dict[Call, int]] = {}
    with _lock:
        _captures.append(mine)
    try:
        yield mine
    finally:
        with _lock:
            _captures.remove(mine)


def install(account: str = DEFAULT_ACCOUNT) -> None:
    """Hook botocore, presigning, Powertools' parameter reads and pools (once per process)."""
    global _installed, _account
    _account = account
    if _installed:
        return
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    module, cls_name, method = BOTOCORE_HOOK
    client_cls = getattr(importlib.import_module(module), cls_name)
    original_call = getattr(client_cls, method)

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        fn = _current.get()
        if fn is not None:
            record(
                fn, self.meta.service_model.service_name, operation_name, api_params, self.meta.region_name
            )
        return original_call(self, operation_name, api_params)

    signers = importlib.import_module(PRESIGN_HOOK[0])
    original_presign = getattr(signers, PRESIGN_HOOK[1])

    def generate_presigned_url(
        self: Any, ClientMethod: str, Params: Any = None, *args: Any, **kw: Any
    ) -> Any:
        fn = _current.get()
        if fn is not None:
            operation = self.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
            record(fn, self.meta.service_model.service_name, operation, Params or {}, self.meta.region_name)
        return original_presign(self, ClientMethod, Params, *args, **kw)

    pt_module, pt_cls, pt_method = POWERTOOLS_HOOK
    provider_cls = getattr(importlib.import_module(pt_module), pt_cls)
    original_get = getattr(provider_cls, pt_method)

    def get(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        fn = _current.get()
        if fn is not None:
            read = _provider_read(self, name)
            if read is not None:
                record(fn, *read)
        return original_get(self, name, *args, **kwargs)

    original_submit = ThreadPoolExecutor.submit

    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if _current.get() is None:
            return original_submit(self, fn, *args, **kwargs)
        return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    setattr(client_cls, method, _make_api_call)
    setattr(signers, PRESIGN_HOOK[1], generate_presigned_url)
    setattr(provider_cls, pt_method, get)
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
    _installed = True


def _provider_read(provider: Any, name: str) -> tuple[str, str, dict[str, Any], str] | None:
    kind = type(provider).__name__
    client = getattr(provider, "client", None)
    region = getattr(getattr(client, "meta", None), "region_name", None) or os.environ.get("AWS_REGION", "")
    if kind == "SSMProvider":
        return "ssm", "GetParameter", {"Name": name}, region
    if kind == "SecretsProvider":
        return "secretsmanager", "GetSecretValue", {"SecretId": name}, region
    return None


# ------------------------------------------------------------------ calls -> IAM actions and ARNs

_IAM_PREFIX = {"stepfunctions": "states"}
_DDB_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# S3 API operations authorised by another action name; True: on the bucket rather than the object.
_S3_ACTIONS: dict[str, tuple[str, bool]] = {
    "HeadObject": ("GetObject", False),
    "ListObjectsV2": ("ListBucket", True),
    "ListObjects": ("ListBucket", True),
    "HeadBucket": ("ListBucket", True),
    "ListObjectVersions": ("ListBucketVersions", True),
    "ListMultipartUploads": ("ListBucketMultipartUploads", True),
    "CreateMultipartUpload": ("PutObject", False),
    "UploadPart": ("PutObject", False),
    "UploadPartCopy": ("PutObject", False),
    "CompleteMultipartUpload": ("PutObject", False),
    "ListParts": ("ListMultipartUploadParts", False),
    "GetBucketNotificationConfiguration": ("GetBucketNotification", True),
    "PutBucketNotificationConfiguration": ("PutBucketNotification", True),
}
_S3_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion"}


def calls_for(service: str, operation: str, params: dict[str, Any], region: str, account: str) -> list[Call]:
    """The IAM authorisations AWS makes for one API call (``service`` is botocore's service name)."""
    prefix = _IAM_PREFIX.get(service, service)
    api = f"{service}.{operation}"

    def one(action: str, resource: str) -> Call:
        return Call(f"{prefix}:{action}", resource, api)

    if service == "dynamodb":
        return _dynamodb(one, operation, params, region, account)
    if service == "s3":
        return _s3(one, operation, params)
    if service == "ssm":
        names = params.get("Names") or [params.get("Name") or params.get("Path")]
        return [one(operation, _ssm_arn(n, region, account)) for n in names]
    if service == "secretsmanager" and params.get("SecretId"):
        return [one(operation, _secret_arn(str(params["SecretId"]), region, account))]
    if service == "stepfunctions":
        arn = params.get("stateMachineArn") or params.get("executionArn") or "*"
        return [one(operation, str(arn))]
    if service == "lambda" and params.get("FunctionName"):
        action = "InvokeFunction" if operation in ("Invoke", "InvokeAsync") else operation
        return [one(action, _lambda_arn(str(params["FunctionName"]), region, account))]
    return [one(operation, "*")]


def _table_arn(table: str, region: str, account: str) -> str:
    return table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def _dynamodb(
    one: Callable[[str, str], Call], op: str, p: dict[str, Any], region: str, account: str
) -> list[Call]:
    if op == "TransactWriteItems":
        out = []
        for item in p.get("TransactItems") or []:
            for kind, action in _DDB_TRANSACT_WRITE.items():
                if kind in item:
                    out.append(one(action, _table_arn(item[kind]["TableName"], region, account)))
        return out
    if op == "TransactGetItems":
        return [
            one("GetItem", _table_arn(i["Get"]["TableName"], region, account))
            for i in p.get("TransactItems") or []
        ]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [one(op, _table_arn(t, region, account)) for t in p.get("RequestItems") or {}]
    if not p.get("TableName"):
        return [one(op, "*")]
    arn = _table_arn(str(p["TableName"]), region, account)
    if p.get("IndexName"):
        arn += f"/index/{p['IndexName']}"
    return [one(op, arn)]


def _s3(one: Callable[[str, str], Call], op: str, p: dict[str, Any]) -> list[Call]:
    bucket, key = p.get("Bucket"), p.get("Key")
    if not bucket:
        return [one(op, "*")]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if op == "DeleteObjects":
        objects = ((p.get("Delete") or {}).get("Objects")) or []
        return [one("DeleteObject", f"{bucket_arn}/{o['Key']}") for o in objects]
    if op == "CopyObject":
        src = p.get("CopySource")
        src_path = (
            f"{src['Bucket']}/{src['Key']}" if isinstance(src, dict) else str(src).split("?")[0].lstrip("/")
        )
        return [one("PutObject", f"{bucket_arn}/{key}"), one("GetObject", f"arn:aws:s3:::{src_path}")]
    action, on_bucket = _S3_ACTIONS.get(op, (op, key is None))
    if p.get("VersionId") and action in _S3_VERSIONED:
        action = _S3_VERSIONED[action]
    out = [one(action, bucket_arn if on_bucket else f"{bucket_arn}/{key}")]
    if op == "PutObject" and p.get("Tagging"):
        out.append(one("PutObjectTagging", f"{bucket_arn}/{key}"))
    return out


def _ssm_arn(name: Any, region: str, account: str) -> str:
    name = str(name or "*")
    return name if name.startswith("arn:") else f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def _secret_arn(secret_id: str, region: str, account: str) -> str:
    # A secret's ARN ends with "-" and six random characters, which policies match with "-??????".
    return (
        secret_id
        if secret_id.startswith("arn:")
        else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-AbCdEf"
    )


def _lambda_arn(name: str, region: str, account: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{name}"


# ------------------------------------------------------------------ policies


def translate(raw_template: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """The CloudFormation SAM would deploy, made offline (as ``tests/unit/test_template.py`` does)."""
    import copy

    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    doc = copy.deepcopy(raw_template)
    for name, res in doc["Resources"].items():
        props = res.setdefault("Properties", {})
        kind = res["Type"]
        if kind == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://artifacts/{name}.zip"
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://artifacts/{name}.zip"
        elif kind == "AWS::Serverless::StateMachine":
            props["DefinitionUri"] = f"s3://artifacts/{name}.asl.json"
    session = boto3.session.Session(region_name=region)  # a region only: no call is made
    translator = Translator({}, Parser(), boto_session=session)
    return translator.translate(doc, parameter_values={}, get_managed_policy_map=lambda: {})


@dataclass(frozen=True)
class Statement:
    """One statement of a function's role, its intrinsics resolved to local names."""

    policy: str  # the role's policy name: "JobsFunctionRolePolicy1"
    index: int
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_actions: bool = False
    not_resources: bool = False

    def matches(self, call: Call) -> bool:
        acted = any(_wild(a, call.action, ignore_case=True) for a in self.actions)
        placed = any(_wild(r, call.resource) for r in self.resources)
        return acted != self.not_actions and placed != self.not_resources

    def describe(self) -> str:
        return f"{self.policy}[{self.index}] {self.effect} {list(self.actions)} on {list(self.resources)}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_policies(translated: dict[str, Any], resolver: Any) -> dict[str, list[Statement]]:
    """Each function's role statements (inline policies and AWS::IAM::Policy resources), resolved."""
    resources = translated["Resources"]
    out: dict[str, list[Statement]] = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        role = (res.get("Properties") or {}).get("Role")
        role_id = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None
        docs: list[tuple[str, dict[str, Any]]] = []
        if role_id and role_id in resources:
            for pol in (resources[role_id].get("Properties") or {}).get("Policies") or []:
                docs.append((pol["PolicyName"], pol["PolicyDocument"]))
            for pid, pres in resources.items():
                props = pres.get("Properties") or {}
                if pres.get("Type") == "AWS::IAM::Policy" and {"Ref": role_id} in (props.get("Roles") or []):
                    docs.append((pid, props["PolicyDocument"]))
        statements = []
        for pname, doc in docs:
            for i, st in enumerate(_as_list(resolver.resolve(doc).get("Statement") or [])):
                not_a, not_r = "NotAction" in st, "NotResource" in st
                statements.append(
                    Statement(
                        policy=pname,
                        index=i,
                        effect=str(st.get("Effect", "Allow")),
                        actions=tuple(str(a) for a in _as_list(st.get("NotAction" if not_a else "Action"))),
                        resources=tuple(
                            str(r) for r in _as_list(st.get("NotResource" if not_r else "Resource"))
                        ),
                        not_actions=not_a,
                        not_resources=not_r,
                    )
                )
        out[name] = statements
    return out


def local_policies(root: Path) -> tuple[dict[str, list[Statement]], Any]:
    """``root``'s template translated and resolved to the local runtime's names; and the resolver."""
    import tempfile

    from imagemint_dev.local.stack import LocalStack

    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(root=root, state_dir=Path(tmp))
        resolver = stack.resolver()
        return function_policies(translate(stack.template.raw), resolver), resolver


_WILD_CACHE: dict[tuple[str, bool], re.Pattern[str]] = {}


def _wild(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    rx = _WILD_CACHE.get((pattern, ignore_case))
    if rx is None:
        body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
        rx = _WILD_CACHE[(pattern, ignore_case)] = re.compile(body, re.IGNORECASE if ignore_case else 0)
    return rx.fullmatch(value) is not None


# ------------------------------------------------------------------ the check


@dataclass
class Denied:
    function: str
    call: Call
    count: int
    denied_by: Statement | None  # an explicit Deny, else None (no Allow matched)

    def missing(self, resolver: Any = None) -> str:
        """The statement that would grant it, in template terms where the resource is a template's."""
        resource = template_ref(self.call.resource, resolver)
        return f"- Effect: Allow\n  Action: {self.call.action}\n  Resource: {resource}"


@dataclass
class Unused:
    """What a function's Allow statement grants that no recorded call used."""

    statement: Statement
    actions: list[str]  # used on none of the statement's resources
    resources: list[str]  # touched by none of the statement's actions

    @property
    def whole(self) -> bool:
        return len(self.actions) == len(self.statement.actions)


@dataclass
class Report:
    denied: list[Denied] = field(default_factory=list)
    unused: dict[str, list[Unused]] = field(default_factory=dict)
    unknown_functions: list[str] = field(default_factory=list)  # recorded, but not in the template
    exercised: list[str] = field(default_factory=list)
    not_exercised: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unknown_functions


def check(records: dict[str, dict[Call, int]], policies: dict[str, list[Statement]]) -> Report:
    """Every recorded call against its function's statements; and what each Allow granted that went unused."""
    report = Report()
    for fn in sorted(records):
        if fn not in policies:
            report.unknown_functions.append(fn)
            continue
        statements = policies[fn]
        for call, count in sorted(records[fn].items()):
            deny = next((s for s in statements if s.effect == "Deny" and s.matches(call)), None)
            if deny is not None or not any(s.effect == "Allow" and s.matches(call) for s in statements):
                report.denied.append(Denied(fn, call, count, deny))
    for fn, statements in sorted(policies.items()):
        calls = list(records.get(fn, {}))
        (report.exercised if calls else report.not_exercised).append(fn)
        if not calls:
            continue
        for s in statements:
            if s.effect != "Allow" or s.not_actions or s.not_resources:
                continue
            used = [
                (a, r)
                for a in s.actions
                for r in s.resources
                if any(_wild(a, c.action, ignore_case=True) and _wild(r, c.resource) for c in calls)
            ]
            actions = [a for a in s.actions if all(u[0] != a for u in used)]
            resources = [r for r in s.resources if all(u[1] != r for u in used)]
            if actions or resources:
                report.unused.setdefault(fn, []).append(Unused(s, actions, resources))
    return report


def template_ref(arn: str, resolver: Any = None) -> str:
    """``arn`` in template terms (``!GetAtt AccountsTable.Arn``) when it names one of its resources."""
    if resolver is None:
        return arn
    best = ""
    for key, value in sorted(getattr(resolver, "attrs", {}).items()):
        if key.endswith(".Arn") and (arn == value or arn.startswith(value + "/")) and len(value) > len(best):
            best, name = value, key
    if not best:
        return arn
    return f"!GetAtt {name}" if arn == best else f'!Sub "${{{name}}}{arn[len(best) :]}"'


def format_report(report: Report, resolver: Any = None) -> str:
    lines: list[str] = []
    if report.denied:
        lines.append(
            f"NOT GRANTED: {len(report.denied)} operation(s) the code performs that its policies do not allow"
        )
        for d in report.denied:
            lines.append(
                f"  {d.function}: {d.call.action} on {d.call.resource} (API {d.call.api}, {d.count}x)"
            )
            if d.denied_by is not None:
                lines.append(f"    denied explicitly by {d.denied_by.describe()}")
            else:
                lines.append("    missing statement (in the function's Policies):")
                lines.extend("      " + ln for ln in d.missing(resolver).splitlines())
    for fn in report.unknown_functions:
        lines.append(f"NOT IN TEMPLATE: calls were recorded for {fn}, which template.yaml does not define")
    lines.append(
        f"least privilege: {len(report.exercised)} function(s) exercised, "
        f"{sum(len(v) for v in report.unused.values())} statement(s) grant more than was used (report only)"
        + (f"; made no AWS call: {', '.join(report.not_exercised)}" if report.not_exercised else "")
    )
    for fn, items in sorted(report.unused.items()):
        lines.append(f"  {fn}:")
        for u in items:
            where = f"({u.statement.policy}[{u.statement.index}])"
            on = ", ".join(template_ref(r, resolver) for r in u.statement.resources)
            if u.whole:
                lines.append(f"    never used: {', '.join(u.statement.actions)} on {on} {where}")
                continue
            if u.actions:
                lines.append(f"    unused actions: {', '.join(u.actions)} on {on} {where}")
            if u.resources:
                res = ", ".join(template_ref(r, resolver) for r in u.resources)
                lines.append(f"    unused resources: {res} {where}")
    return "\n".join(lines)


# ------------------------------------------------------------------ across processes


def _to_json(records: dict[str, dict[Call, int]]) -> dict[str, list[list[Any]]]:
    return {
        fn: [[c.action, c.resource, c.api, n] for c, n in sorted(calls.items())]
        for fn, calls in records.items()
    }


def dump(directory: Path | None = None, records: dict[str, dict[Call, int]] | None = None) -> Path | None:
    """Write this process's recording (or ``records``) to ``directory`` (default: the env var's folder)."""
    target = directory or (Path(os.environ[RECORD_DIR_ENV]) if os.environ.get(RECORD_DIR_ENV) else None)
    if target is None:
        return None
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"calls-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_to_json(recorded() if records is None else records)), encoding="utf-8")
    tmp.replace(path)
    return path


def load_dir(directory: Path, *, skip_pid: int | None = None) -> dict[str, dict[Call, int]]:
    """Merge every recording :func:`dump` wrote in ``directory`` (but ``skip_pid``'s)."""
    out: dict[str, dict[Call, int]] = {}
    for path in sorted(directory.glob("calls-*.json")):
        if skip_pid is not None and path.name == f"calls-{skip_pid}.json":
            continue
        for fn, rows in json.loads(path.read_text(encoding="utf-8")).items():
            per_fn = out.setdefault(fn, {})
            for action, resource, api, n in rows:
                c = Call(action, resource, api)
                per_fn[c] = per_fn.get(c, 0) + int(n)
    return out


def merge(*recordings: dict[str, dict[Call, int]]) -> dict[str, dict[Call, int]]:
    out: dict[str, dict[Call, int]] = {}
    for rec in recordings:
        for fn, calls in rec.items():
            per_fn = out.setdefault(fn, {})
            for c, n in calls.items():
                per_fn[c] = per_fn.get(c, 0) + n
    return out
