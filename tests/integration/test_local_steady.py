"""The local runtime left running keeps what AWS would keep, and no more (imagemint_dev.local.steady).

Each test fails if the moto internal it relies on moves (moto is pinned): the model tracker, the
Step Functions interpreter's thread list, ``FakeKey``'s body buffer.
"""

from __future__ import annotations

import gc
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
