"""The least-privilege recorder and checker (``imagemint_dev.local.iam``), offline.

The recorder hooks a botocore internal (``BaseClient._make_api_call``), botocore's presigning function
and Powertools' ``BaseProvider.get``: the first tests fail loudly if any of them moves. Calls are made
with botocore's Stubber (no network). The checker is shown to fail on a hand-made policy.
"""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from imagemint_dev.local import iam

ROOT = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", iam.DEFAULT_ACCOUNT
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/accounts"


def client(service: str):
    return boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION).client(
        service
    )


@pytest.fixture(autouse=True)
def installed():
    iam.install(ACCOUNT)


def test_hooked_names_exist_where_the_recorder_expects_them() -> None:
    from botocore import signers
    from botocore.handlers import BUILTIN_HANDLERS

    module, cls, method = iam.BOTOCORE_HOOK
    assert callable(getattr(getattr(importlib.import_module(module), cls), method))
    module, fn = iam.PRESIGN_HOOK
    assert callable(getattr(importlib.import_module(module), fn))
    # Clients get generate_presigned_url from this handler, which reads the module's function.
    assert any(
        h[:2] == ("creating-client-class", signers.add_generate_presigned_url) for h in BUILTIN_HANDLERS
    )
    module, cls, method = iam.POWERTOOLS_HOOK
    assert callable(getattr(getattr(importlib.import_module(module), cls), method))


def test_a_call_made_in_a_function_scope_is_recorded_as_its_iam_action_and_arn() -> None:
    ddb = client("dynamodb")
    with Stubber(ddb) as stub, iam.capture() as calls:
        stub.add_response("update_item", {})
        stub.add_response("get_item", {})
        with iam.scope("JobsFunction"):
            ddb.update_item(TableName="accounts", Key={"pk": {"S": "key#1"}}, UpdateExpression="SET a = :a")
        ddb.get_item(TableName="accounts", Key={"pk": {"S": "key#1"}})  # outside any function: not recorded
    assert calls == {"JobsFunction": {iam.Call("dynamodb:UpdateItem", TABLE_ARN, "dynamodb.UpdateItem"): 1}}


def test_calls_on_objects_alike_are_counted_on_the_first_one_recorded() -> None:
    """A server left running names new objects every generation; the record stays one call per shape."""
    bucket = "arn:aws:s3:::b"
    with iam.capture() as calls, iam.scope("GenerateStepFunction"):
        for i in range(500):
            job = f"{i:08x}-0000-4000-8000-{i:012x}"
            ar = f"{i:043d}"
            for key in (f"images/{job}/0.png", f"arweave/{ar}.json"):
                iam.record("GenerateStepFunction", "s3", "PutObject", {"Bucket": "b", "Key": key}, REGION)
        iam.record(
            "GenerateStepFunction", "s3", "GetObject", {"Bucket": "b", "Key": "images/j/0.png"}, REGION
        )
        iam.record("GenerateStepFunction", "s3", "PutObject", {"Bucket": "b", "Key": "other/j/0.png"}, REGION)
    first = "00000000-0000-4000-8000-000000000000"
    assert calls["GenerateStepFunction"] == {
        iam.Call("s3:PutObject", f"{bucket}/images/{first}/0.png", "s3.PutObject"): 500,
        iam.Call("s3:PutObject", f"{bucket}/arweave/{0:043d}.json", "s3.PutObject"): 500,
        iam.Call("s3:GetObject", f"{bucket}/images/j/0.png", "s3.GetObject"): 1,  # another action: its own
        iam.Call("s3:PutObject", f"{bucket}/other/j/0.png", "s3.PutObject"): 1,  # another prefix: its own
    }


def test_presigning_counts_as_the_signed_operation() -> None:
    s3 = client("s3")
    with iam.capture() as calls, iam.scope("FilesFunction"):
        s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "images/j/0.png"})
    assert list(calls["FilesFunction"]) == [
        iam.Call("s3:GetObject", "arn:aws:s3:::b/images/j/0.png", "s3.GetObject")
    ]


def test_powertools_parameter_reads_count_even_from_its_cache() -> None:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    ssm = client("ssm")
    provider = SSMProvider(boto3_client=ssm)
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/imagemint/key-hash-secret"
    with Stubber(ssm) as stub, iam.capture() as calls:
        stub.add_response(
            "get_parameter", {"Parameter": {"Name": "/imagemint/key-hash-secret", "Value": "s"}}
        )
        with iam.scope("NotifyStepFunction"):
            assert provider.get("/imagemint/key-hash-secret", decrypt=True) == "s"
        with iam.scope("SweeperFunction"):  # another function: served from the cache, still its read
            assert provider.get("/imagemint/key-hash-secret", decrypt=True) == "s"
    read = iam.Call("ssm:GetParameter", arn, "ssm.GetParameter")
    assert set(calls) == {"NotifyStepFunction", "SweeperFunction"}
    assert set(calls["SweeperFunction"]) == {read} and set(calls["NotifyStepFunction"]) == {read}


def test_work_a_handler_hands_to_a_pool_stays_its_own() -> None:
    seen: list[str | None] = []
    with iam.scope("GenerateStepFunction"), ThreadPoolExecutor(2) as pool:
        pool.submit(lambda: seen.append(iam.current_function())).result()
    with ThreadPoolExecutor(2) as pool:
        pool.submit(lambda: seen.append(iam.current_function())).result()
    t = threading.Thread(target=lambda: seen.append(iam.current_function()))
    t.start()
    t.join()
    assert seen == ["GenerateStepFunction", None, None]


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        (
            "dynamodb",
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Update": {"TableName": "accounts"}},
                    {"Put": {"TableName": "jobs"}},
                    {"ConditionCheck": {"TableName": "accounts"}},
                ]
            },
            [
                ("dynamodb:UpdateItem", TABLE_ARN),
                ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/jobs"),
                ("dynamodb:ConditionCheckItem", TABLE_ARN),
            ],
        ),
        (
            "dynamodb",
            "Query",
            {"TableName": "accounts", "IndexName": "by-account"},
            [("dynamodb:Query", TABLE_ARN + "/index/by-account")],
        ),
        ("s3", "HeadObject", {"Bucket": "b", "Key": "k/1"}, [("s3:GetObject", "arn:aws:s3:::b/k/1")]),
        (
            "s3",
            "GetObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v"},
            [("s3:GetObjectVersion", "arn:aws:s3:::b/k")],
        ),
        ("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "x/"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        (
            "s3",
            "CopyObject",
            {"Bucket": "b", "Key": "dst", "CopySource": {"Bucket": "a", "Key": "src"}},
            [("s3:PutObject", "arn:aws:s3:::b/dst"), ("s3:GetObject", "arn:aws:s3:::a/src")],
        ),
        (
            "ssm",
            "GetParameter",
            {"Name": "/imagemint/fal-key"},
            [("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/imagemint/fal-key")],
        ),
        (
            "stepfunctions",
            "StartSyncExecution",
            {"stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:sm"},
            [("states:StartSyncExecution", "arn:aws:states:us-east-1:1:stateMachine:sm")],
        ),
        ("dynamodb", "ListTables", {}, [("dynamodb:ListTables", "*")]),
    ],
)
def test_api_calls_map_to_the_authorisations_aws_makes(service, operation, params, expected) -> None:
    got = iam.calls_for(service, operation, params, REGION, ACCOUNT)
    assert [(c.action, c.resource) for c in got] == expected


def statement(effect: str, actions: list[str], resources: list[str], i: int = 0) -> iam.Statement:
    return iam.Statement("HandMade", i, effect, tuple(actions), tuple(resources))


def test_an_operation_no_statement_grants_is_reported() -> None:
    policies = {
        "JobsFunction": [
            statement("Allow", ["dynamodb:GetItem", "dynamodb:Query"], [TABLE_ARN, TABLE_ARN + "/index/*"]),
        ]
    }
    update = iam.Call("dynamodb:UpdateItem", TABLE_ARN, "dynamodb.UpdateItem")
    read = iam.Call("dynamodb:GetItem", TABLE_ARN, "dynamodb.GetItem")
    other_table = iam.Call("dynamodb:GetItem", TABLE_ARN + "2", "dynamodb.GetItem")
    report = iam.check({"JobsFunction": {read: 3, update: 1, other_table: 1}}, policies)
    assert not report.ok
    assert {(d.function, d.call) for d in report.denied} == {
        ("JobsFunction", update),
        ("JobsFunction", other_table),
    }
    text = iam.format_report(report)
    assert (
        "JobsFunction: dynamodb:UpdateItem on " + TABLE_ARN in text and "Action: dynamodb:UpdateItem" in text
    )
    (unused,) = report.unused["JobsFunction"]
    assert unused.actions == ["dynamodb:Query"] and unused.resources == [TABLE_ARN + "/index/*"]


def test_wildcards_grant_and_an_explicit_deny_wins() -> None:
    put = iam.Call("s3:PutObject", "arn:aws:s3:::b/images/1.png", "s3.PutObject")
    secret = iam.Call("s3:PutObject", "arn:aws:s3:::b/secret/1", "s3.PutObject")
    policies = {
        "Fn": [
            statement("Allow", ["s3:Put*"], ["arn:aws:s3:::b/*"]),
            statement("Deny", ["s3:*"], ["arn:aws:s3:::b/secret/*"], 1),
        ]
    }
    report = iam.check({"Fn": {put: 1, secret: 1}}, policies)
    assert [d.call for d in report.denied] == [secret] and report.denied[0].denied_by is not None
    assert iam.check({"Fn": {put: 1}}, policies).ok
    assert not iam.check({"Unknown": {put: 1}}, policies).ok  # a function the template does not define


def test_the_templates_jobs_function_may_record_a_keys_use_and_nothing_more() -> None:
    policies, resolver = iam.local_policies(ROOT)
    accounts = resolver.attrs["AccountsTable.Arn"]

    def granted(action: str) -> bool:
        return iam.check({"JobsFunction": {iam.Call(action, accounts, "x"): 1}}, policies).ok

    assert granted("dynamodb:UpdateItem") and granted("dynamodb:GetItem")
    assert not granted("dynamodb:PutItem") and not granted("dynamodb:DeleteItem")


def test_recordings_written_by_other_processes_are_merged(tmp_path: Path) -> None:
    call = iam.Call("dynamodb:GetItem", TABLE_ARN, "dynamodb.GetItem")
    with iam.capture() as calls, iam.scope("JobsFunction"):  # never into the session's own record
        iam.record("JobsFunction", "dynamodb", "GetItem", {"TableName": "accounts"}, REGION)
    path = iam.dump(tmp_path, calls)
    assert path is not None and path.exists()
    loaded = iam.load_dir(tmp_path)
    assert call in loaded["JobsFunction"]
    assert iam.load_dir(tmp_path, skip_pid=int(path.stem.split("-")[1])) == {}
