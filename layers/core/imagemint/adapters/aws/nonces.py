"""DynamoDB nonce allocator: one counter item per signer and chain in the accounts table.

``nonce#<chain id>#<signer address, lower case>`` holds ``next_nonce``. One
``UpdateItem`` takes a nonce: ``ADD next_nonce 1`` on the condition that the
counter is not behind the node's pending nonce (the floor); when it is (first
use, or the key was used elsewhere) a second conditional ``UpdateItem`` sets it
to ``floor + 1`` and hands out ``floor``. Only ``dynamodb:UpdateItem`` is used.
"""

from __future__ import annotations

from typing import Any

from imagemint.errors import MintError


class DynamoNonceAllocator:
    """:class:`~imagemint.domain.ports.NonceAllocator` on a DynamoDB table keyed by ``pk``."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def allocate(self, signer: str, chain_id: int, floor: int) -> int:
        key = {"pk": {"S": f"nonce#{int(chain_id)}#{signer.lower()}"}}
        floor_v = {"N": str(int(floor))}
        conflict = self._ddb.exceptions.ConditionalCheckFailedException
        for _ in range(16):
            try:
                r = self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="ADD next_nonce :one",
                    ConditionExpression="next_nonce >= :floor",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":floor": floor_v},
                    ReturnValues="UPDATED_NEW",
                )
                return int(r["Attributes"]["next_nonce"]["N"]) - 1
            except conflict:
                pass
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET next_nonce = :next",
                    ConditionExpression="attribute_not_exists(next_nonce) OR next_nonce < :floor",
                    ExpressionAttributeValues={":next": {"N": str(int(floor) + 1)}, ":floor": floor_v},
                )
                return int(floor)
            except conflict:
                continue  # another process moved the counter: take the next one
        raise MintError("The nonce counter kept changing under contention", reason="rpc_error")
