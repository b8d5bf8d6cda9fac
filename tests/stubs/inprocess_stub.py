"""A stub of In Process's moment API (``IMAGEMINT_INPROCESS_BASE_URL=stub.base_url``).

Routes, as In Process publishes them (docs.inprocess.world "Create a Moment", "Timeline"; the
validation follows the public source of its API, ``createMomentSchema`` / ``validate``, read on
2026-11-28):

- ``simulate``: ``POST /api/moment/create/simulate`` validates the body and answers
  ``{contractSimulation: {success}, userOperation: {userOpHash, status}}``; creates nothing;
- ``create``: ``POST /api/moment/create`` validates, creates the collection when ``contract`` has
  ``name`` and ``uri`` (a new address) or adds to ``contract.address``, and answers
  ``{contractAddress, tokenId, hash, chainId}``; token ids count from 1 per collection;
- ``timeline``: ``GET /api/timeline?collection=|artist=&chain_id=&hidden=&limit=&page=`` lists
  moments ``{address, token_id, chain_id, id, uri, creator, admins, created_at, protocol}`` with
  ``pagination: {page, limit, total_pages}``.

Validation (zod's messages): a body that is not JSON is a 500 ``{message}`` (the route's catch); a
schema failure is a 400 ``{"message": "Invalid input", "errors": [{"field", "message"}]}``:
``account``, ``token.createReferral``, ``token.payoutRecipient``, ``salesConfig.currency`` must be
``0x`` + 40 hex (``Invalid``); ``tokenMetadataURI``, ``salesConfig.type``, ``pricePerToken`` strings;
``saleStart`` / ``saleEnd`` a string or number BigInt takes; ``mintToCreatorCount`` a number;
``maxSupply`` an integer >= 1; ``contract`` needs ``address``, or ``name`` and ``uri`` (field
``contract.contract``); ``splits``, when given, at least 2 entries summing to 100. A ``contract.address``
that is not a collection of this ``account`` fails on chain: 500 ``{message}`` (simulate too).

Fault kinds for :meth:`~stubs.StubServer.inject` (``on="create"`` etc. to pick a route):

=======================  ====================================================================
``server_error``         500 ``{"message"}`` (nothing created)
``delay``                answer normally after ``seconds=``
``lost_after_create``    create the moment, then answer only after ``seconds=`` (default 30):
                         the client has given up; the moment exists
``garbled_after_create`` create the moment, then answer 200 with truncated JSON
``http``                 any ``status=`` / ``body=``
=======================  ====================================================================

``indexing = False`` keeps new moments off the timeline (In Process's indexer lagging).
``creates_per_uri()`` counts the moments created per metadata URI.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import Fault, Recorded, Reply, StubServer

__all__ = ["InProcessStub", "StubMoment"]

_ADDRESS = re.compile(r"^0x[a-fA-F0-9]{40}$")


@dataclass
class StubMoment:
    address: str
    token_id: int
    uri: str
    account: str
    chain_id: int
    hash: str
    created_at: str
    listed_on_timeline: bool = True

    def listed(self) -> dict[str, Any]:
        admin = {"address": self.account, "hidden": False}
        return {
            "address": self.address,
            "token_id": str(self.token_id),
            "chain_id": self.chain_id,
            "id": hashlib.sha256(f"{self.address}:{self.token_id}".encode()).hexdigest()[:32],
            "uri": self.uri,
            "creator": admin,
            "admins": [admin],
            "created_at": self.created_at,
            "protocol": "in_process",
        }


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Check:
    """zod-like checks collecting ``{field, message}`` issues."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.fatal: str | None = None  # a transform that throws: the route's catch answers 500

    def issue(self, path: str, message: str) -> None:
        self.errors.append({"field": path, "message": message})

    def obj(self, data: Any, key: str, path: str, *, optional: bool = False) -> dict[str, Any] | None:
        value = data.get(key) if isinstance(data, dict) else None
        if value is None:
            if not optional:
                self.issue(path, "Required")
            return None
        if not isinstance(value, dict):
            self.issue(path, f"Expected object, received {_type_name(value)}")
            return None
        return value

    def string(self, data: dict[str, Any], key: str, path: str, *, optional: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if not optional:
                self.issue(path, "Required")
            return None
        if not isinstance(value, str):
            self.issue(path, f"Expected string, received {_type_name(value)}")
            return None
        return value

    def address(self, data: dict[str, Any], key: str, path: str, *, optional: bool = False) -> str | None:
        value = self.string(data, key, path, optional=optional)
        if value is not None and not _ADDRESS.match(value):
            self.issue(path, "Invalid")
            return None
        return value.lower() if value else None

    def bigint(self, data: dict[str, Any], key: str, path: str) -> None:
        value = data.get(key)
        if value is None:
            self.issue(path, "Required")
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            self.issue(path, f"Expected string, received {_type_name(value)}")
        elif isinstance(value, str) and not re.fullmatch(r"\s*(0x[0-9a-fA-F]+|[0-9]+)?\s*", value):
            self.fatal = self.fatal or f"Cannot convert {value} to a BigInt"
        elif isinstance(value, float) and not value.is_integer():
            self.fatal = self.fatal or f"The number {value} cannot be converted to a BigInt"

    def number(self, data: dict[str, Any], key: str, path: str, *, optional: bool = False) -> float | None:
        value = data.get(key)
        if value is None:
            if not optional:
                self.issue(path, "Required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.issue(path, f"Expected number, received {_type_name(value)}")
            return None
        return float(value)


def validate(body: Any) -> _Check:
    """What In Process's ``createMomentSchema`` makes of ``body``: ``errors`` (400) or ``fatal`` (500)."""
    c = _Check()
    if not isinstance(body, dict):
        c.issue("", f"Expected object, received {_type_name(body)}")
        return c
    contract = c.obj(body, "contract", "contract")
    if contract is not None:
        address = c.address(contract, "address", "contract.address", optional=True)
        name = c.string(contract, "name", "contract.name", optional=True)
        uri = c.string(contract, "uri", "contract.uri", optional=True)
        if not address and (name is None or uri is None) and not c.errors:
            c.issue(
                "contract.contract",
                "Either contract.address must be provided, "
                "or both contract.name and contract.uri must be provided",
            )
    token = c.obj(body, "token", "token")
    if token is not None:
        c.string(token, "tokenMetadataURI", "token.tokenMetadataURI")
        c.address(token, "createReferral", "token.createReferral")
        sales = c.obj(token, "salesConfig", "token.salesConfig")
        if sales is not None:
            c.string(sales, "type", "token.salesConfig.type")
            c.string(sales, "pricePerToken", "token.salesConfig.pricePerToken")
            c.bigint(sales, "saleStart", "token.salesConfig.saleStart")
            c.bigint(sales, "saleEnd", "token.salesConfig.saleEnd")
            c.address(sales, "currency", "token.salesConfig.currency", optional=True)
        c.number(token, "mintToCreatorCount", "token.mintToCreatorCount")
        c.address(token, "payoutRecipient", "token.payoutRecipient", optional=True)
        supply = c.number(token, "maxSupply", "token.maxSupply", optional=True)
        if supply is not None and (not supply.is_integer() or supply < 1):
            c.issue("token.maxSupply", "Number must be greater than or equal to 1")
    c.address(body, "account", "account")
    splits = body.get("splits")
    if splits is not None:
        if not isinstance(splits, list):
            c.issue("splits", f"Expected array, received {_type_name(splits)}")
        elif splits and not c.errors:
            if len(splits) < 2:
                c.issue("splits", "Splits must have at least 2 recipients")
            elif sum(float(s.get("percentAllocation", 0)) for s in splits if isinstance(s, dict)) != 100:
                c.issue("splits", "Splits total percentage must equal 100%")
    return c


class InProcessStub(StubServer):
    """In Process's moment create / simulate and timeline routes; see the module docstring."""

    def __init__(self, *, chain_id: int = 8453) -> None:
        super().__init__()
        self.chain_id = chain_id
        self.indexing = True
        self.moments: list[StubMoment] = []
        self.collections: dict[str, dict[str, Any]] = {}  # address -> {name, uri, account, next}
        self._state = threading.Lock()

    # ------------------------------------------------------------------ assertions

    def creates_per_uri(self) -> Counter[str]:
        with self._state:
            return Counter(m.uri for m in self.moments)

    def moments_of(self, uri: str) -> list[StubMoment]:
        with self._state:
            return [m for m in self.moments if m.uri == uri]

    # ------------------------------------------------------------------ routing

    def route_of(self, rec: Recorded) -> str:
        if rec.method == "POST" and rec.path == "/api/moment/create/simulate":
            return "simulate"
        if rec.method == "POST" and rec.path == "/api/moment/create":
            return "create"
        if rec.method == "GET" and rec.path == "/api/timeline":
            return "timeline"
        return "other"

    def handle(self, rec: Recorded) -> Reply:
        if rec.route == "other":
            return Reply.json(404, {"message": "Not Found"})
        if rec.route == "timeline":
            return self._timeline(rec)
        if rec.json is None:  # req.json() throws inside the route's try: its catch answers 500
            return Reply.json(500, {"message": "Unexpected end of JSON input"})
        checked = validate(rec.json)
        if checked.fatal:
            return Reply.json(500, {"message": checked.fatal})
        if checked.errors:
            return Reply.json(400, {"message": "Invalid input", "errors": checked.errors})
        problem = self._onchain_problem(rec.json)
        if problem:
            return Reply.json(500, {"message": problem})
        if rec.route == "simulate":
            return Reply.json(
                200,
                {
                    "contractSimulation": {"success": True},
                    "userOperation": {"userOpHash": "0x" + secrets.token_hex(32), "status": "prepared"},
                },
            )
        return Reply.json(200, self._create(rec.json))

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply | None:
        if fault.kind == "server_error":
            return Reply.json(500, {"message": fault.params.get("message", "failed to create moment")})
        if fault.kind in ("lost_after_create", "garbled_after_create"):
            reply = self.handle(rec)
            if reply.status != 200:
                return reply
            if fault.kind == "garbled_after_create":
                return Reply(200, reply.body[: len(reply.body) // 2], {"Content-Type": "application/json"})
            self.sleep(float(fault.params.get("seconds", 30.0)))
            return reply
        return super().fault_reply(fault, rec)

    # ------------------------------------------------------------------ state

    def _onchain_problem(self, body: dict[str, Any]) -> str | None:
        address = (body["contract"].get("address") or "").lower()
        if not address:
            return None
        with self._state:
            coll = self.collections.get(address)
        if coll is None:
            return f'The contract function "multicall" reverted: no collection at {address}'
        if coll["account"] != body["account"].lower():
            return 'The contract function "multicall" reverted with the reason: UserMissingRoleForToken'
        return None

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        account = body["account"].lower()
        with self._state:
            address = (body["contract"].get("address") or "").lower()
            if not address:
                seed = f"{account}:{body['contract']['name']}:{len(self.collections)}".encode()
                address = "0x" + hashlib.sha256(seed).hexdigest()[:40]
                self.collections[address] = {
                    "name": body["contract"]["name"],
                    "uri": body["contract"]["uri"],
                    "account": account,
                    "next": 1,
                }
            coll = self.collections[address]
            token_id = coll["next"]
            coll["next"] += 1
            moment = StubMoment(
                address=address,
                token_id=token_id,
                uri=body["token"]["tokenMetadataURI"],
                account=account,
                chain_id=self.chain_id,
                hash="0x" + secrets.token_hex(32),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            moment.listed_on_timeline = self.indexing
            self.moments.append(moment)
        return {
            "contractAddress": address,
            "tokenId": str(token_id),
            "hash": moment.hash,
            "chainId": self.chain_id,
        }

    def _timeline(self, rec: Recorded) -> Reply:
        def arg(name: str) -> str | None:
            values = rec.query.get(name)
            return values[0] if values else None

        limit = min(int(arg("limit") or 100), 100)
        page = int(arg("page") or 1)
        chain_id = int(arg("chain_id") or self.chain_id)
        collection = (arg("collection") or "").lower()
        artist = (arg("artist") or "").lower()
        with self._state:
            found = [
                m
                for m in reversed(self.moments)
                if m.listed_on_timeline
                and m.chain_id == chain_id
                and (not collection or m.address == collection)
                and (not artist or m.account == artist)
            ]
        total_pages = max(1, math.ceil(len(found) / limit))
        items = found[(page - 1) * limit : page * limit]
        return Reply.json(
            200,
            {
                "status": "success",
                "moments": [m.listed() for m in items],
                "pagination": {"page": page, "limit": limit, "total_pages": total_pages},
            },
        )
