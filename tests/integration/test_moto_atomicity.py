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
