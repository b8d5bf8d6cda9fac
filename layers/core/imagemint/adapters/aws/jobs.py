"""DynamoDB job store: one item per job, state transitions appended, a sparse index of open jobs."""

from __future__ import annotations

from typing import Any

from imagemint.adapters.aws.client import from_dynamo, to_dynamo
from imagemint.domain.models import OPEN_STATUSES, Job, now
from imagemint.errors import Conflict, NotFound

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
        item = {k: ser.serialize(v) for k, v in to_dynamo(job.model_dump(exclude_none=True)).items()}
        if job.status in OPEN_STATUSES:
            item["open_shard"] = {"S": OPEN}
        try:
            self._ddb.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(job_id)"
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            # One job per id: a caller that names its job (ingest) finds it already made.
            raise Conflict(f"Job {job.job_id} exists") from None

    def get(self, job_id: str) -> Job | None:
        from boto3.dynamodb.types import TypeDeserializer

        r = self._ddb.get_item(TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        if "Item" not in r:
            return None
        de = TypeDeserializer()
        return Job.model_validate(from_dynamo({k: de.deserialize(v) for k, v in r["Item"].items()}))

    def status(self, job_id: str) -> str | None:
        r = self._ddb.get_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        )
        item = r.get("Item")
        return item["status"]["S"] if item and "status" in item else None

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
            values[f":v{i}"] = ser.serialize(to_dynamo(v))
            sets.append(f"#f{i} = :v{i}")
        expr = "SET " + ", ".join(sets)
        if "status" in fields:
            names["#tr"] = "transitions"
            values[":tr"] = ser.serialize(to_dynamo([{"status": fields["status"], "at": ts}]))
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
        return Job.model_validate(from_dynamo({k: de.deserialize(v) for k, v in r["Attributes"].items()}))

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
                from_dynamo({k: de.deserialize(v) for k, v in item.items() if k != "open_shard"})
            )
            for item in r.get("Items", [])
        ]
