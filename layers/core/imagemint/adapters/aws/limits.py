"""DynamoDB limit store: rate-limit counters and concurrency leases in the accounts table.

What :mod:`imagemint.api.ratelimit` counts with (the ``LimitStore`` port): ``rl#<subject>#<minute>``
counters and ``cc#<subject>`` lease maps, both dropped by TTL (attribute ``ttl``).
"""

from __future__ import annotations

from typing import Any

from imagemint.domain.ports import LEASE_S


class DynamoLimitStore:
    """:class:`LimitStore` on the accounts table (``rl#...`` counters, ``cc#...`` lease maps; TTL ``ttl``)."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def hit(self, counter: str, limit: int, expires_at: int) -> int | None:
        try:
            r = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"rl#{counter}"}},
                UpdateExpression="ADD hits :one SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":ttl": {"N": str(expires_at)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return None
        return int(r["Attributes"]["hits"]["N"])

    def acquire(self, slot: str, lease: str, limit: int, at: float) -> bool:
        key = {"pk": {"S": f"cc#{slot}"}}
        ttl = {"N": str(int(at + 2 * LEASE_S))}
        expiry = {"N": str(round(at + LEASE_S, 3))}
        for _ in range(4):
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET leases.#lease = :exp, #ttl = :ttl",
                    ConditionExpression="attribute_exists(leases) AND size(leases) < :limit",
                    ExpressionAttributeNames={"#lease": lease, "#ttl": "ttl"},
                    ExpressionAttributeValues={":exp": expiry, ":limit": {"N": str(limit)}, ":ttl": ttl},
                )
                return True
            except self._ddb.exceptions.ConditionalCheckFailedException:
                pass
            r = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True)
            item = r.get("Item")
            if item is None or "leases" not in item:
                try:
                    self._ddb.put_item(
                        TableName=self._table,
                        Item={**key, "leases": {"M": {lease: expiry}}, "ttl": ttl},
                        ConditionExpression="attribute_not_exists(leases)",
                    )
                    return True
                except self._ddb.exceptions.ConditionalCheckFailedException:
                    continue  # someone else created it: try again
            leases = {k: float(v["N"]) for k, v in item["leases"]["M"].items()}
            if len(leases) < limit:
                continue  # created or freed meanwhile: try again
            dead = [k for k, exp in leases.items() if exp < at][:20]
            if not dead:
                return False
            names = {f"#d{i}": k for i, k in enumerate(dead)}
            values = {f":d{i}": item["leases"]["M"][k] for i, k in enumerate(dead)}
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="REMOVE " + ", ".join(f"leases.#d{i}" for i in range(len(dead))),
                    ConditionExpression=" AND ".join(f"leases.#d{i} = :d{i}" for i in range(len(dead))),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except self._ddb.exceptions.ConditionalCheckFailedException:
                pass  # cleared by someone else
        return False

    def release(self, slot: str, lease: str) -> None:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"cc#{slot}"}},
                UpdateExpression="REMOVE leases.#lease",
                ConditionExpression="attribute_exists(leases)",
                ExpressionAttributeNames={"#lease": lease},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            pass
