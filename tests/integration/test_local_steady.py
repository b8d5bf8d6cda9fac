"""The local runtime left running keeps what AWS would keep, and no more (imagemint_dev.local.steady).

Each test fails if the moto internal it relies on moves (moto is pinned): the model tracker, the
Step Functions interpreter's thread list, ``FakeKey``'s body buffer.
"""

from __future__ import annotations

import gc
import json
import threading
from types import SimpleNamespace

import boto3
import pytest

from imagemint_dev.local import motoext, steady

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def installed():
    motoext.install()  # installs steady too


def test_moto_no_longer_keeps_every_object_it_ever_made() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    def live() -> int:
        gc.collect()
        return sum(1 for obj in Item.instances_tracked if obj.attrs.get("soak") is not None)

    before = live()
    kept = [Item(DynamoType({"S": f"h{i}"}), None, {"soak": {"S": "x"}}) for i in range(300)]
    assert live() == before + 300  # the dashboard still sees every live object
    del kept
    assert live() == before  # and keeps none alive
    assert isinstance(Item.__dict__.get("_imagemint_live_instances"), steady.LiveInstances)


def test_the_interpreter_thread_list_drops_finished_threads() -> None:
    from moto.stepfunctions.parser import utils
    from moto.stepfunctions.parser.asl.component.program import program

    assert isinstance(utils.TMP_THREADS, steady.RunningThreads)
    assert program.TMP_THREADS is utils.TMP_THREADS  # the modules that bound it at import see the same list
    for _ in range(200):
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        utils.TMP_THREADS.append(t)
    assert len(utils.TMP_THREADS) <= 65


def test_a_state_machine_keeps_its_running_and_latest_finished_executions() -> None:
    def execution(status: str) -> SimpleNamespace:
        return SimpleNamespace(exec_status=SimpleNamespace(value=status))

    running = [execution("RUNNING") for _ in range(3)]
    finished = [execution(s) for s in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED") * 5]
    sm = SimpleNamespace(executions=[*running[:1], *finished, *running[1:]])
    assert steady.prune_executions(sm, keep=4) == len(finished) - 4
    assert sm.executions == [running[0], *finished[-4:], *running[1:]]
    assert steady.prune_executions(sm, keep=4) == 0


def test_a_finished_execution_keeps_its_history_packed_not_its_interpreter() -> None:
    import time

    from moto import mock_aws
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Result": {"x": "y" * 4000}, "ResultPath": "$.a", "Next": "B"},
            "B": {"Type": "Pass", "End": True},
        },
    }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="steady-history",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        run = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"job": "j"}))["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=run)["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        described = sfn.describe_execution(executionArn=run)
        described.pop("ResponseMetadata")
        history = sfn.get_execution_history(executionArn=run, maxResults=1000)["events"]
        execution = stepfunctions_parser_backends["123456789012"]["us-east-1"].describe_execution(run)
        before = _deep_size(execution.exec_worker.env)

        assert not steady.keep_history_only(execution)  # not before it has settled
        assert steady.keep_history_only(execution, settle_s=0)
        assert isinstance(execution.exec_worker.env, steady.FinishedEnvironment)
        after = _deep_size(execution.exec_worker.env)
        assert after < before / 4, (before, after)
        again = sfn.describe_execution(executionArn=run)
        assert {k: v for k, v in again.items() if k in described} == described
        assert sfn.get_execution_history(executionArn=run, maxResults=1000)["events"] == history
        with pytest.raises(sfn.exceptions.InvalidToken):  # looked up in every execution: none holds it
            sfn.send_task_failure(taskToken="no-such-token")
        assert not steady.keep_history_only(execution, settle_s=0)  # once


def test_s3_bodies_live_in_files_and_go_with_their_objects(tmp_path) -> None:
    from moto import mock_aws

    folder = tmp_path / "objects"
    steady.keep_objects_in(folder)
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="steady-bucket")
            body = bytes(range(256)) * 4096  # 1 MiB
            s3.put_object(Bucket="steady-bucket", Key="k", Body=body, ContentType="image/png")
            files = list(folder.iterdir())
            assert len(files) == 1 and files[0].read_bytes() == body
            got = s3.get_object(Bucket="steady-bucket", Key="k")
            assert got["Body"].read() == body and got["ContentLength"] == len(body)
            assert s3.head_object(Bucket="steady-bucket", Key="k")["ETag"] == got["ETag"]
            # Overwritten: the old body's file goes.
            s3.put_object(Bucket="steady-bucket", Key="k", Body=b"second")
            gc.collect()
            assert [f.read_bytes() for f in folder.iterdir()] == [b"second"]
            s3.delete_object(Bucket="steady-bucket", Key="k")
            gc.collect()
            assert list(folder.iterdir()) == []
    finally:
        steady.keep_objects_in(None)


def test_s3_keys_share_the_default_acl_and_an_acl_set_on_one_stays_its_own() -> None:
    from moto import mock_aws
    from moto.backends import get_backend

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="steady-acl")
        for key in ("a", "b"):
            s3.put_object(Bucket="steady-acl", Key=key, Body=b"x")
        keys = get_backend("s3")["123456789012"]["aws"].buckets["steady-acl"].keys
        a, b = keys["a"], keys["b"]
        assert a.acl is b.acl and a._transitions is b._transitions  # one shared copy, not one each
        s3.put_object_acl(Bucket="steady-acl", Key="a", ACL="public-read")
        grants = {g["Permission"] for g in s3.get_object_acl(Bucket="steady-acl", Key="a")["Grants"]}
        assert grants == {"FULL_CONTROL", "READ"}
        grants = {g["Permission"] for g in s3.get_object_acl(Bucket="steady-acl", Key="b")["Grants"]}
        assert grants == {"FULL_CONTROL"}  # the shared private ACL was replaced on a, not changed


def _deep_size(obj: object) -> int:
    """Bytes of ``obj`` and everything it references (types, modules and functions left out)."""
    import sys
    import types

    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
    seen: set[int] = set()
    stack, total = [obj], 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def _job_record(i: int) -> dict:
    """An item shaped like a finished legacy job record (nested maps and lists, repeated long strings)."""
    owner = "9ID3s-" + "x" * 677
    archive = {
        "M": {
            "id": {"S": f"arweave-id-{i:032d}"},
            "owner": {"S": owner},
            "signature": {"S": "s" * 683},
            "tags": {
                "L": [{"M": {"name": {"S": f"tag{t}"}, "value": {"S": f"value {t}"}}} for t in range(7)]
            },
        }
    }
    return {
        "job_id": {"S": f"job-{i:06d}"},
        "status": {"S": "SUCCEEDED"},
        "credits_charged": {"N": "211"},
        "image": {"B": bytes(range(256))},
        "tags": {"SS": ["a", "b"]},
        "done": {"BOOL": True},
        "error": {"NULL": True},
        "result": {"M": {"archive": {"L": [archive]}, "metadata_archive": archive, "cost": {"N": "0.21"}}},
        "archive_tx_0": {"S": json.dumps({"owner": owner, "signature": "t" * 683})},
    }


def test_dynamodb_items_are_packed_between_requests_and_read_back_unchanged() -> None:
    from moto import mock_aws
    from moto.backends import get_backend

    n = 200
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="steady-packed",
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(n):
            ddb.put_item(TableName="steady-packed", Item=_job_record(i))
        table = get_backend("dynamodb")["123456789012"]["us-east-1"].tables["steady-packed"]
        gc.collect()
        assert steady.unpacked_items() == 0  # every request packed what it touched
        # moto's objects took ~14 KiB an item here (a real job record: 36 KiB); packed, ~1.2 KiB.
        assert _deep_size(table.items) < n * 3 * 1024, _deep_size(table.items) / n

        assert ddb.get_item(TableName="steady-packed", Key={"job_id": {"S": "job-000007"}})[
            "Item"
        ] == _job_record(7)
        # An update made in one request is there in the next (the item is packed again after it).
        ddb.update_item(
            TableName="steady-packed",
            Key={"job_id": {"S": "job-000007"}},
            UpdateExpression="SET #s = :s, #r.#c = :c ADD credits_charged :one",
            ExpressionAttributeNames={"#s": "status", "#r": "result", "#c": "cost"},
            ExpressionAttributeValues={":s": {"S": "REFUNDED"}, ":c": {"N": "0"}, ":one": {"N": "1"}},
        )
        got = ddb.get_item(
            TableName="steady-packed", Key={"job_id": {"S": "job-000007"}}, ConsistentRead=True
        )
        want = _job_record(7)
        want["status"], want["credits_charged"] = {"S": "REFUNDED"}, {"N": "212"}
        want["result"]["M"]["cost"] = {"N": "0"}
        assert got["Item"] == want
        # Conditions and scans see the packed attributes.
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            ddb.put_item(
                TableName="steady-packed",
                Item=_job_record(8),
                ConditionExpression="#s <> :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "SUCCEEDED"}},
            )
        scanned = ddb.scan(
            TableName="steady-packed",
            FilterExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "REFUNDED"}},
        )["Items"]
        assert [i["job_id"]["S"] for i in scanned] == ["job-000007"]
        gc.collect()
        assert steady.unpacked_items() == 0
        assert all(item.__dict__["_attrs"] is None for item in table.all_items())


def test_the_trie_caches_that_keep_old_tries_alive_are_emptied() -> None:
    from trie.hexary import HexaryTrie

    cache = HexaryTrie._cached_create_node_to_db_mapping
    trie = HexaryTrie({}, prune=True)
    for i in range(50):
        trie[i.to_bytes(32, "big")] = b"v" * 40  # a pruning trie caches each node it writes, with itself
    assert cache.cache_info().currsize > 0
    assert steady.forget_trie_caches() > 0
    assert cache.cache_info().currsize == 0
    assert trie[(7).to_bytes(32, "big")] == b"v" * 40  # only a cache: the trie reads as before


def test_the_allocator_trimmer_starts_and_stops() -> None:
    trimmer = steady.Trimmer(every_s=0.01).start()
    trimmer.stop()
    assert not any(t.name == "imagemint-malloc-trim" and t.is_alive() for t in threading.enumerate())


def test_expired_dynamodb_items_are_deleted_as_dynamodb_does() -> None:
    from moto import mock_aws
    from moto.backends import get_backend

    now = 1_800_000_000
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for table, ttl in (("steady-ttl", True), ("steady-no-ttl", False)):
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            if ttl:
                ddb.update_time_to_live(
                    TableName=table, TimeToLiveSpecification={"AttributeName": "ttl", "Enabled": True}
                )
        items = {
            "expired": {"N": str(now - 1)},
            "due-now": {"N": str(now)},
            "later": {"N": str(now + 60)},
            "ancient": {"N": str(now - 6 * 365 * 24 * 3600)},  # DynamoDB ignores TTLs over 5 years old
            "not-a-number": {"S": str(now - 1)},
            "no-ttl": None,
        }
        for table in ("steady-ttl", "steady-no-ttl"):
            for pk, ttl in items.items():
                ddb.put_item(TableName=table, Item={"pk": {"S": pk}, **({"ttl": ttl} if ttl else {})})
        backend = get_backend("dynamodb")["123456789012"]["us-east-1"]
        assert steady.expire_items(backend, now=now) == 2

        def keys(table: str) -> set[str]:
            return {i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"]}

        assert keys("steady-ttl") == set(items) - {"expired", "due-now"}
        assert keys("steady-no-ttl") == set(items)  # TTL not enabled: nothing expires
        assert steady.expire_items(backend, now=now) == 0


def test_the_expirer_sweeps_in_the_background_and_stops() -> None:
    swept = threading.Event()

    class Backend:
        tables: dict[str, object] = {}

    def backends() -> list[object]:
        swept.set()
        return [Backend()]

    expirer = steady.Expirer(backends, every_s=0.01).start()
    try:
        assert swept.wait(5)
    finally:
        expirer.stop()
    assert not any(t.name == "imagemint-ddb-ttl" and t.is_alive() for t in threading.enumerate())


def test_the_local_stack_enables_ttl_where_the_template_does(tmp_path) -> None:
    from pathlib import Path

    from imagemint_dev.local.runtime import start

    root = Path(__file__).resolve().parents[2]
    with start(root=root, state_dir=tmp_path / "state", port=0) as rt:
        tables = rt.stack.template.of_type("AWS::DynamoDB::Table")
        with_ttl = {
            n: r["Properties"]["TimeToLiveSpecification"]
            for n, r in tables.items()
            if "TimeToLiveSpecification" in r["Properties"]
        }
        assert with_ttl  # the template has TTL tables (accounts: rate-limit counters; idempotency)
        ddb = rt.stack.client("dynamodb")
        for name, spec in with_ttl.items():
            got = ddb.describe_time_to_live(TableName=rt.stack.names[name])["TimeToLiveDescription"]
            assert got == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec["AttributeName"]}
        assert any(t.name == "imagemint-ddb-ttl" and t.is_alive() for t in threading.enumerate())
