"""DynamoDB mint queue: one item per creator contract in the accounts table.

``mintq#<chain id>#<contract>`` holds ``waiting`` (job id -> JSON ``{uri,
creator, at}``), ``taken`` (job id -> the sender that took it) and the
sender's lease (``leader``, ``leader_until``). Every write is one conditional
``UpdateItem`` (a moment moves from ``waiting`` to ``taken`` and back in one);
:meth:`DynamoMintQueue.state` is one consistent ``GetItem``. The item stays
small: the moments pending on one contract at once.
"""

from __future__ import annotations

import json
from typing import Any


class DynamoMintQueue:
    """:class:`~imagemint.domain.ports.MintQueue` on a DynamoDB table keyed by ``pk``."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def _key(self, queue: str) -> dict[str, Any]:
        return {"pk": {"S": f"mintq#{queue}"}}

    def _update(self, queue: str, **kwargs: Any) -> bool:
        try:
            self._ddb.update_item(TableName=self._table, Key=self._key(queue), **kwargs)
            return True
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False

    def enqueue(self, queue: str, job_id: str, entry: dict[str, Any]) -> bool:
        for _ in range(4):
            if self._update(
                queue,
                UpdateExpression="SET waiting.#job = :entry",
                ConditionExpression="attribute_exists(waiting) AND attribute_not_exists(taken.#job)",
                ExpressionAttributeNames={"#job": job_id},
                ExpressionAttributeValues={":entry": {"S": json.dumps(entry)}},
            ):
                return True
            if self._update(
                queue,
                UpdateExpression="SET waiting = :map, taken = :empty",
                ConditionExpression="attribute_not_exists(waiting)",
                ExpressionAttributeValues={
                    ":map": {"M": {job_id: {"S": json.dumps(entry)}}},
                    ":empty": {"M": {}},
                },
            ):
                return True
            if job_id in self.state(queue)[1]:
                return False  # taken by a sender
        return False

    def state(self, queue: str) -> tuple[dict[str, dict[str, Any]], dict[str, str], str | None, float]:
        item = self._ddb.get_item(TableName=self._table, Key=self._key(queue), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return {}, {}, None, 0.0
        waiting = {k: json.loads(v["S"]) for k, v in item.get("waiting", {}).get("M", {}).items()}
        taken = {k: v["S"] for k, v in item.get("taken", {}).get("M", {}).items()}
        leader = item.get("leader", {}).get("S")
        until = float(item.get("leader_until", {}).get("N", "0"))
        return waiting, taken, leader, until

    def lead(self, queue: str, job_id: str, until: float, now: float) -> bool:
        return self._update(
            queue,
            UpdateExpression="SET leader = :me, leader_until = :until",
            ConditionExpression="attribute_not_exists(leader) OR leader = :me OR leader_until < :now",
            ExpressionAttributeValues={
                ":me": {"S": job_id},
                ":until": {"N": repr(round(until, 3))},
                ":now": {"N": repr(round(now, 3))},
            },
        )

    def take(self, queue: str, job_id: str, job_ids: list[str]) -> bool:
        if not job_ids:
            return True
        n = range(len(job_ids))
        return self._update(
            queue,
            UpdateExpression="SET "
            + ", ".join(f"taken.#j{i} = :me" for i in n)
            + " REMOVE "
            + ", ".join(f"waiting.#j{i}" for i in n),
            ConditionExpression="leader = :me AND "
            + " AND ".join(f"attribute_exists(waiting.#j{i})" for i in n),
            ExpressionAttributeNames={f"#j{i}": j for i, j in zip(n, job_ids, strict=True)},
            ExpressionAttributeValues={":me": {"S": job_id}},
        )

    def done(self, queue: str, job_id: str, job_ids: list[str]) -> None:
        # One write for the whole batch (all still taken by job_id: the usual case), else one per moment.
        n = range(len(job_ids))
        if len(job_ids) > 1 and self._update(
            queue,
            UpdateExpression="REMOVE " + ", ".join(f"taken.#j{i}" for i in n),
            ConditionExpression=" AND ".join(f"taken.#j{i} = :me" for i in n),
            ExpressionAttributeNames={f"#j{i}": j for i, j in zip(n, job_ids, strict=True)},
            ExpressionAttributeValues={":me": {"S": job_id}},
        ):
            return
        for other in job_ids:
            self._update(
                queue,
                UpdateExpression="REMOVE taken.#job",
                ConditionExpression="taken.#job = :me",
                ExpressionAttributeNames={"#job": other},
                ExpressionAttributeValues={":me": {"S": job_id}},
            )

    def untake(self, queue: str, job_id: str, holder: str, entry: dict[str, Any]) -> bool:
        return self._update(
            queue,
            UpdateExpression="SET waiting.#job = :entry REMOVE taken.#job",
            ConditionExpression="taken.#job = :holder",
            ExpressionAttributeNames={"#job": job_id},
            ExpressionAttributeValues={":entry": {"S": json.dumps(entry)}, ":holder": {"S": holder}},
        )

    def release(self, queue: str, job_id: str) -> None:
        self._update(
            queue,
            UpdateExpression="REMOVE leader, leader_until",
            ConditionExpression="leader = :me",
            ExpressionAttributeValues={":me": {"S": job_id}},
        )
