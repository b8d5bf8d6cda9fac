"""AWS adapters: S3 image store, DynamoDB job and account stores, Step Functions pipeline.

Each adapter takes its boto3 client in the constructor. ``clients()`` is the
cached factory that reuses clients across warm invocations; boto3 itself is
imported on first use, not at import time of the function.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from decimal import Decimal
from functools import cache
from typing import Any

from imagemint.domain.credits import insufficient
from imagemint.domain.models import (
    OPEN_STATUSES,
    Account,
    ApiKeyRecord,
    GenerationRequest,
    Job,
    LedgerEntry,
    now,
)
from imagemint.errors import (
    Conflict,
    InsufficientCredits,
    InternalError,
    NotFound,
    PipelineFailed,
    RateLimited,
)

_lock = threading.Lock()


@cache
def client(service: str, region: str) -> Any:
    """One boto3 client per service for the life of the process (warm invocations reuse it)."""
    import boto3
    from botocore.config import Config

    cfg: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 3}}
    if service == "stepfunctions":
        # StartSyncExecution waits for the whole state machine.
        cfg["read_timeout"] = 120
        if os.environ.get("AWS_ENDPOINT_URL"):
            # A local endpoint (the local runtime) has no "sync-" host prefix.
            cfg["inject_host_prefix"] = False
    if service == "s3":
        cfg["signature_version"] = "s3v4"
    with _lock:
        return boto3.session.Session().client(service, region_name=region, config=Config(**cfg))


def _to_dynamo(value: Any) -> Any:
    return json.loads(json.dumps(value), parse_float=Decimal)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class S3ImageStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None:
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=data, ContentType=media_type, Metadata=metadata or {}
        )

    def get(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            raise NotFound(f"No object {key}") from None

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            r = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError:
            return None
        return {
            "size": r["ContentLength"],
            "content_type": r.get("ContentType"),
            "metadata": r.get("Metadata", {}),
        }

    def url(self, key: str, expires_in: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )


OPEN_JOBS_INDEX = "open-jobs"
OPEN = "open"  # the value of ``open_shard`` while a job is ACCEPTED or RUNNING (a sparse index)


class DynamoJobStore:
    """Jobs table: one item per job (``job_id``), with state transitions appended.

    While a job is ACCEPTED or RUNNING its item carries ``open_shard``, the key of
    the sparse index ``open-jobs`` (sorted by ``updated_at``); any other status
    removes it, so the sweeper reads only the jobs still open.
    """

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def create(self, job: Job) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        item = {k: ser.serialize(v) for k, v in _to_dynamo(job.model_dump(exclude_none=True)).items()}
        if job.status in OPEN_STATUSES:
            item["open_shard"] = {"S": OPEN}
        self._ddb.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(job_id)"
        )

    def get(self, job_id: str) -> Job | None:
        from boto3.dynamodb.types import TypeDeserializer

        r = self._ddb.get_item(TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        if "Item" not in r:
            return None
        de = TypeDeserializer()
        return Job.model_validate(_from_dynamo({k: de.deserialize(v) for k, v in r["Item"].items()}))

    def update(self, job_id: str, *, expect_status: str | None = None, **fields: Any) -> Job:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        ser = TypeSerializer()
        ts = now()
        fields["updated_at"] = ts
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        for i, (k, v) in enumerate(fields.items()):
            names[f"#f{i}"] = k
            values[f":v{i}"] = ser.serialize(_to_dynamo(v))
            sets.append(f"#f{i} = :v{i}")
        expr = "SET " + ", ".join(sets)
        if "status" in fields:
            names["#tr"] = "transitions"
            values[":tr"] = ser.serialize(_to_dynamo([{"status": fields["status"], "at": ts}]))
            values[":empty"] = {"L": []}
            expr += ", #tr = list_append(if_not_exists(#tr, :empty), :tr)"
            names["#open"] = "open_shard"
            if fields["status"] in OPEN_STATUSES:
                values[":open"] = {"S": OPEN}
                expr += ", #open = :open"
            else:
                expr += " REMOVE #open"
        condition = "attribute_exists(job_id)"
        if expect_status is not None:
            names["#st"] = "status"
            values[":expected"] = {"S": expect_status}
            condition += " AND #st = :expected"
        try:
            r = self._ddb.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expr,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item") if hasattr(exc, "response") else None
            if old and expect_status is not None:
                status = old.get("status", {}).get("S")
                raise Conflict(f"Job is {status}, not {expect_status}") from None
            raise NotFound(f"Job {job_id} not found") from None
        de = TypeDeserializer()
        return Job.model_validate(_from_dynamo({k: de.deserialize(v) for k, v in r["Attributes"].items()}))

    def stale_open_jobs(self, updated_before: float, limit: int) -> list[Job]:
        from boto3.dynamodb.types import TypeDeserializer

        r = self._ddb.query(
            TableName=self._table,
            IndexName=OPEN_JOBS_INDEX,
            KeyConditionExpression="open_shard = :open AND updated_at < :before",
            ExpressionAttributeValues={":open": {"S": OPEN}, ":before": {"N": str(updated_before)}},
            Limit=limit,
        )
        de = TypeDeserializer()
        return [
            Job.model_validate(
                _from_dynamo({k: de.deserialize(v) for k, v in item.items() if k != "open_shard"})
            )
            for item in r.get("Items", [])
        ]


class DynamoAccountStore:
    """Accounts table: ``pk`` = ``account#<id>`` for accounts, ``key#<hmac>`` for API keys."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def _put(self, pk: str, data: dict[str, Any], condition: str | None = None) -> None:
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        item = {k: ser.serialize(v) for k, v in _to_dynamo(data).items()}
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
        return _from_dynamo({k: de.deserialize(v) for k, v in r["Item"].items()})

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

    def _add(self, account_id: str, amount: int, *, require_balance: bool) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": f"account#{account_id}"}},
            "UpdateExpression": "SET credits = credits + :delta",
            "ExpressionAttributeValues": {":delta": {"N": str(amount)}},
            "ConditionExpression": "attribute_exists(pk)",
            "ReturnValues": "UPDATED_NEW",
        }
        if require_balance:
            kwargs["ExpressionAttributeValues"][":need"] = {"N": str(-amount)}
            kwargs["ConditionExpression"] = "attribute_exists(pk) AND credits >= :need"
        try:
            r = self._ddb.update_item(**kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            account = self.get_account(account_id)
            if account is None:
                raise NotFound("Account not found") from None
            raise InsufficientCredits(
                "Insufficient credits", required=-amount, available=account.credits
            ) from None
        return int(r["Attributes"]["credits"]["N"])

    def charge(self, account_id: str, amount: int) -> int:
        return self._add(account_id, -amount, require_balance=True)

    def refund(self, account_id: str, amount: int) -> int:
        return self._add(account_id, amount, require_balance=False)

    def add_credits(self, account_id: str, amount: int) -> int:
        return self._add(account_id, amount, require_balance=False)

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
            _from_dynamo({k: de.deserialize(v) for k, v in r["Attributes"].items()})
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
                item = _from_dynamo({k: de.deserialize(v) for k, v in raw.items()})
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
        item = {k: ser.serialize(v) for k, v in _to_dynamo(entry.model_dump(exclude_none=True)).items()}
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


ACCOUNT_INDEX = "by-account"
_TX_ATTEMPTS = 8


class StepFunctionsPipeline:
    """Runs the Express state machine: synchronously (StartSyncExecution) or started (StartExecution)."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, job_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        r = self._sfn.start_execution(
            stateMachineArn=self._arn, name=name or job_id, input=json.dumps(payload)
        )
        return str(r.get("executionArn") or "")

    def run_sync(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        payload = json.dumps(
            {"job_id": job_id, "request": request.model_dump(exclude_none=True), "mode": "sync"}
        )
        r = self._sfn.start_sync_execution(stateMachineArn=self._arn, name=job_id, input=payload)
        status = r.get("status")
        if status == "SUCCEEDED":
            return json.loads(r.get("output") or "{}")
        raise PipelineFailed(status or "FAILED", r.get("error"), r.get("cause"))


__all__ = [
    "DynamoAccountStore",
    "DynamoJobStore",
    "InternalError",
    "PipelineFailed",
    "S3ImageStore",
    "StepFunctionsPipeline",
    "client",
]
