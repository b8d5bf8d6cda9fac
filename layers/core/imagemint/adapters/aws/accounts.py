"""DynamoDB account store: accounts, API keys and the credit ledger in the accounts table."""

from __future__ import annotations

import random
import time
from typing import Any

from imagemint.adapters.aws.client import from_dynamo, to_dynamo
from imagemint.domain.credits import insufficient
from imagemint.domain.models import Account, ApiKeyRecord, LedgerEntry, now
from imagemint.errors import InternalError, NotFound, RateLimited

ACCOUNT_INDEX = "by-account"
_TX_ATTEMPTS = 8


class DynamoAccountStore:
    """Accounts table: ``pk`` = ``account#<id>`` for accounts, ``key#<hmac>`` for API keys."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def _put(self, pk: str, data: dict[str, Any], condition: str | None = None) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        item = {k: ser.serialize(v) for k, v in to_dynamo(data).items()}
        item["pk"] = {"S": pk}
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition:
            kwargs["ConditionExpression"] = condition
        self._ddb.put_item(**kwargs)

    def _get(self, pk: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        r = self._ddb.get_item(TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        if "Item" not in r:
            return None
        de = TypeDeserializer()
        return from_dynamo({k: de.deserialize(v) for k, v in r["Item"].items()})

    def create_account(self, account: Account) -> None:
        self._put(f"account#{account.account_id}", account.model_dump(), "attribute_not_exists(pk)")

    def get_account(self, account_id: str) -> Account | None:
        data = self._get(f"account#{account_id}")
        return Account.model_validate(data) if data else None

    def put_key(self, record: ApiKeyRecord) -> None:
        self._put(f"key#{record.key_hash}", record.model_dump())

    def get_key(self, key_hash: str) -> ApiKeyRecord | None:
        data = self._get(f"key#{key_hash}")
        return ApiKeyRecord.model_validate(data) if data else None

    # ---- keys ----
    def touch_key(self, key_hash: str, at: float, min_interval_s: float) -> bool:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"key#{key_hash}"}},
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(last_used_at) OR last_used_at < :cutoff)",
                ExpressionAttributeValues={
                    ":at": {"N": str(at)},
                    ":cutoff": {"N": str(at - min_interval_s)},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def revoke_key(self, key_hash: str, at: float) -> ApiKeyRecord | None:
        from boto3.dynamodb.types import TypeDeserializer

        try:
            r = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"key#{key_hash}"}},
                UpdateExpression="SET revoked = :t, revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":t": {"BOOL": True}, ":at": {"N": str(at)}},
                ReturnValues="ALL_NEW",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return None
        de = TypeDeserializer()
        return ApiKeyRecord.model_validate(
            from_dynamo({k: de.deserialize(v) for k, v in r["Attributes"].items()})
        )

    def list_account_items(self, account_id: str) -> tuple[list[ApiKeyRecord], list[LedgerEntry]]:
        """Keys and ledger lines through the ``by-account`` index (account_id, pk)."""
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        keys: list[ApiKeyRecord] = []
        ledger: list[LedgerEntry] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": ACCOUNT_INDEX,
            "KeyConditionExpression": "account_id = :a",
            "ExpressionAttributeValues": {":a": {"S": account_id}},
        }
        while True:
            r = self._ddb.query(**kwargs)
            for raw in r.get("Items", []):
                item = from_dynamo({k: de.deserialize(v) for k, v in raw.items()})
                pk = str(item.get("pk", ""))
                if pk.startswith("key#"):
                    keys.append(ApiKeyRecord.model_validate(item))
                elif pk.startswith("ledger#"):
                    ledger.append(LedgerEntry.model_validate(item))
            if "LastEvaluatedKey" not in r:
                break
            kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        keys.sort(key=lambda k: k.created_at)
        ledger.sort(key=lambda e: e.created_at)
        return keys, ledger

    # ---- credits and ledger ----
    def _ledger_item(self, entry: LedgerEntry) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        item = {k: ser.serialize(v) for k, v in to_dynamo(entry.model_dump(exclude_none=True)).items()}
        item["pk"] = {"S": f"ledger#{entry.account_id}#{entry.entry_id}"}
        return item

    def _transact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Run a transaction; None on success, else the cancellation reasons.

        Real DynamoDB cancels a transaction that meets another one on the same
        item (``TransactionConflict``); those are retried with jittered backoff.
        """
        for attempt in range(_TX_ATTEMPTS):
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return None
            except self._ddb.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                codes = {r.get("Code") for r in reasons}
                if "ConditionalCheckFailed" in codes or "TransactionConflict" not in codes:
                    return reasons
            except self._ddb.exceptions.TransactionInProgressException:
                pass
            time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter
        raise RateLimited("The account is busy; retry shortly", retry_after=1)

    def charge_job(self, entry: LedgerEntry) -> None:
        account_key = {"pk": {"S": f"account#{entry.account_id}"}}
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": account_key,
                        "UpdateExpression": "SET credits = credits - :amt",
                        "ConditionExpression": "attribute_exists(pk) AND credits >= :amt",
                        "ExpressionAttributeValues": {":amt": {"N": str(entry.credits)}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._ledger_item(entry),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is None:
            return
        account_reason = reasons[0] if reasons else {}
        if account_reason.get("Code") == "ConditionalCheckFailed":
            old = account_reason.get("Item")
            if not old:
                raise NotFound("Account not found")
            available = int(old.get("credits", {}).get("N", "0"))
            raise insufficient(entry.credits, available)
        if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
            return  # this job was charged before: never twice
        raise InternalError("The charge could not be written")

    def refund_job(self, account_id: str, entry_id: str, amount: int, *, reason: str) -> bool:
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": f"ledger#{account_id}#{entry_id}"}},
                        "UpdateExpression": "SET refunded = :amt, refunded_at = :at, refund_reason = :why",
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(refunded_at) "
                        "AND credits >= :amt",
                        "ExpressionAttributeValues": {
                            ":amt": {"N": str(amount)},
                            ":at": {"N": str(now())},
                            ":why": {"S": reason},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": f"account#{account_id}"}},
                        "UpdateExpression": "SET credits = credits + :amt",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":amt": {"N": str(amount)}},
                    }
                },
            ]
        )
        if reasons is None:
            return True
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            return False
        raise InternalError("The refund could not be written")

    def get_ledger(self, account_id: str, entry_id: str) -> LedgerEntry | None:
        data = self._get(f"ledger#{account_id}#{entry_id}")
        return LedgerEntry.model_validate(data) if data else None

    def grant(self, entry: LedgerEntry) -> int:
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": f"account#{entry.account_id}"}},
                        "UpdateExpression": "SET credits = credits + :amt",
                        "ConditionExpression": "attribute_exists(pk) AND credits >= :floor",
                        "ExpressionAttributeValues": {
                            ":amt": {"N": str(entry.credits)},
                            ":floor": {"N": str(max(0, -entry.credits))},
                        },
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._ledger_item(entry),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is not None:
            first = reasons[0] if reasons else {}
            if first.get("Code") == "ConditionalCheckFailed":
                if not first.get("Item"):
                    raise NotFound("Account not found")
                raise insufficient(-entry.credits, int(first["Item"].get("credits", {}).get("N", "0")))
            raise InternalError("The grant could not be written")
        account = self.get_account(entry.account_id)
        return account.credits if account else 0

    # ---- collections (chain_mode=inprocess) ----
    @staticmethod
    def _collection_attr(key: str) -> str:
        return "collection#" + key

    def get_collection(self, account_id: str, key: str) -> str | None:
        r = self._ddb.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"account#{account_id}"}},
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": self._collection_attr(key)},
            ConsistentRead=True,
        )
        value = r.get("Item", {}).get(self._collection_attr(key), {}).get("S")
        return str(value) if value else None

    def set_collection(self, account_id: str, key: str, address: str) -> str:
        """First writer wins: ``if_not_exists`` in one UpdateItem on the account's own item."""
        try:
            r = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"account#{account_id}"}},
                UpdateExpression="SET #c = if_not_exists(#c, :a)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#c": self._collection_attr(key)},
                ExpressionAttributeValues={":a": {"S": address}},
                ReturnValues="UPDATED_NEW",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise NotFound("Account not found") from None
        return str(r["Attributes"][self._collection_attr(key)]["S"])
