"""The local runtime's moto keeps DynamoDB's item-level atomicity under concurrent requests.

Unpatched moto (5.2.5) rolls a cancelled ``TransactWriteItems`` back by putting
back a copy of the whole table taken when the transaction began, undoing
writes other server threads made meanwhile (seen here: 18 of 180 increments
lost without ``motoext``'s lock). Credits rely on both conditional updates and
transactions being atomic, so the runtime serialises moto's item operations;
this test fails if that patch stops applying.
"""

from __future__ import annotations

import sys
import threading

import boto3
import pytest
from botocore.config import Config

from imagemint_dev.local import motoext

pytestmark = pytest.mark.integration

ROUNDS = 60
THREADS = 3


@pytest.fixture
def ddb():
    from moto.server import ThreadedMotoServer

    from imagemint_dev.local.stack import free_port

    motoext.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()

    def client():
        return boto3.session.Session().client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            # Every failure seen: botocore would retry a 500 and hide a race behind the retry.
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )

    yield client
    server.stop()


def test_cancelled_transactions_never_undo_concurrent_writes(ddb) -> None:
    d = ddb()
    d.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(50):  # a table worth copying
        d.put_item(TableName="t", Item={"pk": {"S": f"pad{i}"}, "x": {"S": "y" * 200}})
    d.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})

    def increment() -> None:
        c = ddb()
        for _ in range(ROUNDS):
            c.update_item(
                TableName="t",
                Key={"pk": {"S": "counter"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    def cancelled() -> None:
        c = ddb()
        for _ in range(ROUNDS):
            try:
                c.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": {"pk": {"S": "pad1"}},
                                "UpdateExpression": "SET x = :v",
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ExpressionAttributeValues": {":v": {"S": "z"}},
                            }
                        }
                    ]
                )
            except c.exceptions.TransactionCanceledException:
                pass

    threads = [threading.Thread(target=f) for f in (increment, cancelled) for _ in range(THREADS)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave threads often, as a busy server does
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    n = int(d.get_item(TableName="t", Key={"pk": {"S": "counter"}})["Item"]["n"]["N"])
    assert n == ROUNDS * THREADS


RACE_ROUNDS = 60


def test_concurrent_updates_and_reads_of_one_item_never_fail(ddb) -> None:
    """UpdateItem (growing the item) racing GetItem, Query, Scan and UpdateItem ... ReturnValues on one item.

    moto serialises a response outside its backend call: an item another thread is updating in place
    was deep-copied or serialised while its attributes changed ("dictionary changed size during
    iteration", a 500). Every DynamoDB request of the local runtime now runs whole under one lock.
    """
    d = ddb()
    d.create_table(
        TableName="race",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"pk": {"S": "job"}, "sk": {"S": "0"}}
    # A large item: serialising or copying it takes long enough for another thread to run meanwhile.
    pad = {f"p{i}": {"M": {"s": {"S": "y" * 20}, "n": {"N": str(i)}}} for i in range(100)}
    d.put_item(TableName="race", Item={**key, **pad, "m": {"M": {}}})
    errors: list[str] = []
    stop = threading.Event()

    def guarded(body):
        def run() -> None:
            c = ddb()
            try:
                for i in range(RACE_ROUNDS):
                    if stop.is_set():
                        return
                    body(c, i)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"{type(exc).__name__}: {exc}")
                stop.set()

        return run

    def writer(tag: str):
        def body(c, i: int) -> None:
            # A new top-level attribute and a new map entry each time: the item's dicts change size.
            c.update_item(
                TableName="race",
                Key=key,
                UpdateExpression=f"SET a_{tag}_{i + 1} = :v, m.#k = :v REMOVE a_{tag}_{i}",
                ExpressionAttributeNames={"#k": f"{tag}{i}"},
                ExpressionAttributeValues={":v": {"S": "x" * 50}},
                ReturnValues="ALL_NEW" if i % 2 else "UPDATED_OLD",
            )

        return body

    def reader(c, i: int) -> None:
        if i % 3 == 0:
            c.get_item(TableName="race", Key=key, ConsistentRead=True)
        elif i % 3 == 1:
            c.query(
                TableName="race",
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "job"}},
            )
        else:
            c.scan(TableName="race")

    threads = [threading.Thread(target=guarded(writer(t))) for t in ("a", "b")]
    threads += [threading.Thread(target=guarded(reader)) for _ in range(2)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)  # a bound, not a timing assertion: a hung server fails below
    finally:
        sys.setswitchinterval(old)
        stop.set()
    assert not any(t.is_alive() for t in threads), "requests did not finish"
    assert errors == []


def test_a_cancelled_transaction_undoes_only_its_own_writes(ddb) -> None:
    """The runtime's TransactWriteItems (copies of the items it touches, not of whole tables)."""
    d = ddb()
    d.create_table(
        TableName="tx",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    acct = {"pk": {"S": "account"}, "sk": {"S": "a"}}
    gone = {"pk": {"S": "old"}, "sk": {"S": "x"}}
    d.put_item(TableName="tx", Item={**acct, "credits": {"N": "10"}, "tags": {"M": {"k": {"S": "v"}}}})
    d.put_item(TableName="tx", Item={**gone, "v": {"S": "kept"}})

    def item(key):
        return d.get_item(TableName="tx", Key=key, ConsistentRead=True).get("Item")

    charge = {
        "Update": {
            "TableName": "tx",
            "Key": acct,
            "UpdateExpression": "SET credits = credits - :n, tags.k = :w",
            "ConditionExpression": "credits >= :n",
            "ExpressionAttributeValues": {":n": {"N": "4"}, ":w": {"S": "changed"}},
        }
    }
    ledger = {"pk": {"S": "ledger"}, "sk": {"S": "1"}}
    put = {
        "Put": {
            "TableName": "tx",
            "Item": {**ledger, "n": {"N": "4"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    delete = {"Delete": {"TableName": "tx", "Key": gone}}
    failing = {
        "ConditionCheck": {
            "TableName": "tx",
            "Key": gone,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    before = item(acct)
    with pytest.raises(d.exceptions.TransactionCanceledException) as err:
        d.transact_write_items(TransactItems=[charge, put, failing])
    reasons = [r["Code"] for r in err.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert item(acct) == before  # the update (nested map included) undone
    assert item(ledger) is None  # the put undone
    assert item(gone)["v"] == {"S": "kept"}

    d.transact_write_items(TransactItems=[charge, put, delete])
    assert item(acct)["credits"] == {"N": "6"} and item(acct)["tags"]["M"]["k"] == {"S": "changed"}
    assert item(ledger)["n"] == {"N": "4"}
    assert item(gone) is None

    with pytest.raises(d.exceptions.TransactionCanceledException):  # the same ledger line twice: refused
        d.transact_write_items(TransactItems=[charge, put])
    assert item(acct)["credits"] == {"N": "6"}
