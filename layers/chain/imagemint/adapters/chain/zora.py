"""Minting moments through the Zora 1155 protocol (as In Process does on Base).

One creator = one ``ZoraCreator1155`` contract, created through the
``ZoraCreator1155Factory`` proxy. One moment = one new token on it
(``setupNewToken(uri, maxSupply)``) plus one copy minted to the creator
(``adminMint(creator, tokenId, 1, "")``).

Transactions
    When the signer is an admin of the creator's contract, the token is set up
    and minted in ONE transaction through the contract's ``multicall``::

        multicall([assumeLastTokenIdMatches(next - 1),
                   setupNewToken(uri, maxSupply),
                   adminMint(creator, next, 1, "")])

    ``next`` is read from ``nextTokenId()`` under the signer lock; the
    contract's own ``assumeLastTokenIdMatches`` makes the whole transaction
    revert if another writer took that id first (caught at gas estimation it
    is retried once with a fresh id; caught when mined it fails as
    ``reverted``), and the id in the ``SetupNewToken`` event is checked
    against ``next`` afterwards. A signer that is only a minter (not an admin) uses two
    transactions: ``setupNewToken``, then ``adminMint`` with the event's id.

Contracts
    :meth:`ZoraMinter.ensure_contract` uses the factory's
    ``createContractDeterministic``: the address depends only on (signer,
    contract URI, name, creator, setup actions), so the contract is created
    once per creator and name, and a repeated call (or one racing in another
    process) finds the existing contract instead of creating a second one. The
    creator is the contract's owner and default admin; a setup action gives the
    platform signer admin permission so it can mint moments for the creator
    (the creator can revoke it). The address is taken from the factory's
    ``SetupNewContract`` event and checked against the predicted one. A run
    killed after sending ``createContractDeterministic`` is safe to repeat:
    the repeat finds the contract's code at the predicted address, or (when
    the first transaction is still pending) sends a second one that reverts on
    the taken address, after which the existing contract is returned.

Re-runs after a crash (``journal`` / :meth:`ZoraMinter.resume`)
    The mint step can be killed anywhere (Lambda timeout, out of memory) and
    is then run again with the same input. To keep that from minting a second
    token, :meth:`ZoraMinter.mint` takes a ``journal``: a callable that
    persists a small JSON record (``stage``, the contract, uri, creator,
    expected token id, and the signed transaction: hash, raw bytes, nonce)
    after the transaction is signed and BEFORE it is sent. A re-run hands
    that record to :meth:`ZoraMinter.resume`, which settles the transaction
    without signing anything new for the same step:

    - a receipt exists: the moment comes from it (the token id from its
      ``SetupNewToken`` event);
    - no receipt and the sender's nonce is still unused: the same raw
      transaction is sent again (same nonce: it can be mined at most once)
      and awaited;
    - no receipt and the nonce was taken by another transaction: it was
      never mined and never can be, so ``resume`` returns None and the caller
      mints afresh; a reverted multicall or ``setupNewToken`` also returns
      None (nothing was set up);
    - no receipt, nonce unused, and the node refuses the raw transaction
      (e.g. a balance too low for it now): ``MintError`` (``rpc_error``), the
      record stays as it is. Minting afresh here could mint twice should the
      refused transaction still be mined, so the next re-run settles it
      again; once anything else of this signer takes the nonce, that is
      final and the re-run mints afresh.

    After a two-transaction mint's ``setupNewToken`` only the ``adminMint``
    is sent again, for the token already set up.

Nonces and concurrency
    Every transaction of one signer (per chain) is built, signed, sent and
    awaited under a process-wide lock, with the nonce taken as
    ``max(eth_getTransactionCount(pending), last used + 1)``. Holding the lock
    until the receipt keeps gas estimation and the token-id guard exact and
    leaves no nonce gap after a failure; the price is one transaction per block
    per signer (~2 s on Base), which the asynchronous mint step absorbs.

    The lock does not reach other processes. In AWS the mint function must run
    with reserved concurrency 1 per signer key (one signer per concurrency-1
    mint function; add signers and functions to scale out). Other processes
    using the same key by mistake do not corrupt anything: a taken nonce is
    answered with "nonce too low" and retried with a fresh nonce, a taken token
    id makes the multicall revert on the contract's own guard. A DynamoDB nonce
    counter was not built: with the lock held through the receipt it would buy
    nothing while a single writer per key is the rule.

Guards (all raise :class:`~imagemint.domain.ports.MintError` before signing)
    - the configured chain id must be 8453 (Base), 84532 (Base Sepolia) or the
      configured local id, and the node's ``eth_chainId`` must equal it
      (checked before every signature);
    - the latest base fee must not exceed ``max_fee_gwei`` (EIP-1559
      ``maxFeePerGas`` is ``min(cap, 2 * base + tip)``, the tip at most
      ``max_priority_fee_gwei``);
    - the estimated gas must not exceed ``gas_limit_cap``.
    Receipts are checked for ``status == 1`` and decoded with
    ``errors=DISCARD`` (other contracts' events in the receipt are ignored).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
)
from web3.logs import DISCARD

from imagemint.domain.ports import PUBLIC_CHAIN_IDS, Moment, MomentMinter
from imagemint.errors import MintError

if TYPE_CHECKING:
    from imagemint.settings import Settings

log = logging.getLogger(__name__)

#: The ZoraCreator1155Factory proxy on Base and Base Sepolia (same address on both).
ZORA_FACTORY_ADDRESSES: dict[int, str] = {
    8453: "0x777777C338d93e2C7adf08D102d45CA7CC4Ed021",
    84532: "0x777777C338d93e2C7adf08D102d45CA7CC4Ed021",
}

CONTRACT_BASE_ID = 0
PERMISSION_BIT_ADMIN = 2**1
PERMISSION_BIT_MINTER = 2**2
#: Zora's "open edition" supply (uint64 max), what In Process moments use.
OPEN_EDITION_SUPPLY = 2**64 - 1

_TOKEN_ID_MISMATCH = "0x" + keccak(text="TokenIdMismatch(uint256,uint256)")[:4].hex()
_NONCE_ERRORS = ("nonce too low", "invalid nonce", "already known", "replacement transaction underpriced")
_KNOWN_TX_ERRORS = ("already known", "known transaction", "already imported", "alreadyknown")
#: Version of the pending-mint records written through a journal.
JOURNAL_VERSION = 1
_STAGES = ("multicall", "setup", "admin_mint")

#: Persists a pending-mint record (a JSON-ready dict) before its transaction is sent.
MintJournal = Callable[[dict[str, Any]], None]


# --- Minimal ABI: only the functions and events used here (checked against the
# --- published artifacts by the tests).


def _params(spec: list[tuple[str, str]], indexed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for name, typ in spec:
        item: dict[str, Any] = {"name": name, "type": typ}
        if typ == "tuple":
            item["components"] = [
                {"name": "royaltyMintSchedule", "type": "uint32"},
                {"name": "royaltyBPS", "type": "uint32"},
                {"name": "royaltyRecipient", "type": "address"},
            ]
        if indexed:
            item["indexed"] = name in indexed
        out.append(item)
    return out


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[str], mutability: str) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "inputs": _params(inputs),
        "outputs": [{"name": "", "type": t} for t in outputs],
        "stateMutability": mutability,
    }


def _event(name: str, inputs: list[tuple[str, str]], indexed: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "event", "name": name, "inputs": _params(inputs, indexed), "anonymous": False}


_ROYALTY = ("defaultRoyaltyConfiguration", "tuple")

FACTORY_ABI: list[dict[str, Any]] = [
    _fn(
        "createContractDeterministic",
        [("newContractURI", "string"), ("name", "string"), _ROYALTY]
        + [("defaultAdmin", "address"), ("setupActions", "bytes[]")],
        ["address"],
        "nonpayable",
    ),
    _fn(
        "deterministicContractAddressWithSetupActions",
        [("msgSender", "address"), ("newContractURI", "string"), ("name", "string")]
        + [("contractAdmin", "address"), ("setupActions", "bytes[]")],
        ["address"],
        "view",
    ),
    _event(
        "SetupNewContract",
        [("newContract", "address"), ("creator", "address"), ("defaultAdmin", "address")]
        + [("contractURI", "string"), ("name", "string"), _ROYALTY],
        indexed=("newContract", "creator", "defaultAdmin"),
    ),
]

CREATOR_1155_ABI: list[dict[str, Any]] = [
    _fn("multicall", [("data", "bytes[]")], ["bytes[]"], "nonpayable"),
    _fn("setupNewToken", [("newURI", "string"), ("maxSupply", "uint256")], ["uint256"], "nonpayable"),
    _fn(
        "adminMint",
        [("recipient", "address"), ("tokenId", "uint256"), ("quantity", "uint256"), ("data", "bytes")],
        [],
        "nonpayable",
    ),
    _fn("assumeLastTokenIdMatches", [("lastTokenId", "uint256")], [], "view"),
    _fn("nextTokenId", [], ["uint256"], "view"),
    _fn(
        "isAdminOrRole", [("user", "address"), ("tokenId", "uint256"), ("role", "uint256")], ["bool"], "view"
    ),
    _fn(
        "addPermission",
        [("tokenId", "uint256"), ("user", "address"), ("permissionBits", "uint256")],
        [],
        "nonpayable",
    ),
    _fn("uri", [("tokenId", "uint256")], ["string"], "view"),
    _fn("balanceOf", [("account", "address"), ("id", "uint256")], ["uint256"], "view"),
    _event(
        "SetupNewToken",
        [("tokenId", "uint256"), ("sender", "address"), ("newURI", "string"), ("maxSupply", "uint256")],
        indexed=("tokenId", "sender"),
    ),
]


# --- Process-wide per-signer state.

_STATE_GUARD = threading.Lock()
_SIGNER_LOCKS: dict[tuple[int, str, str], threading.RLock] = {}
_NEXT_NONCE: dict[tuple[int, str, str], int] = {}


def _signer_lock(key: tuple[int, str, str]) -> threading.RLock:
    with _STATE_GUARD:
        lock = _SIGNER_LOCKS.get(key)
        if lock is None:
            lock = _SIGNER_LOCKS[key] = threading.RLock()
        return lock


def _gwei_to_wei(value: float | Decimal | str) -> int:
    return int(Decimal(str(value)) * 10**9)


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    to_hex = getattr(value, "to_0x_hex", None)
    return to_hex() if to_hex else str(value)


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction about to be sent: what a re-run needs to find it or send it again."""

    hash: str
    raw: str  # 0x-hex of the raw signed transaction
    nonce: int


@dataclass(frozen=True)
class MintOutcome:
    """A minted moment with what it cost (for logs, metrics and tests)."""

    moment: Moment
    tx_hashes: tuple[str, ...]
    gas_used: int
    batched: bool


class ZoraMinter(MomentMinter):
    """Mints moments on Zora 1155 contracts with one local signer (see module doc)."""

    def __init__(
        self,
        w3: Web3,
        *,
        factory_address: str,
        signer: LocalAccount,
        chain_id: int,
        max_fee_gwei: float | Decimal | str,
        max_priority_fee_gwei: float | Decimal | str,
        gas_limit_cap: int,
        local_chain_id: int | None = None,
        batch: bool = True,
        max_supply: int = OPEN_EDITION_SUPPLY,
        contract_uri: str = "",
        gas_headroom: float = 1.25,
        receipt_timeout_s: float = 120.0,
        poll_latency_s: float = 0.25,
    ) -> None:
        allowed = set(PUBLIC_CHAIN_IDS) | ({local_chain_id} if local_chain_id is not None else set())
        if chain_id not in allowed:
            raise MintError(
                f"Chain id {chain_id} is not allowed (allowed: {sorted(allowed)})",
                reason="chain_id_not_allowed",
                chain_id=chain_id,
            )
        self.w3 = w3
        self.signer = signer
        self.chain_id = chain_id
        self.factory_address = self._address(factory_address, "factory_address")
        self.max_fee_wei = _gwei_to_wei(max_fee_gwei)
        self.max_priority_fee_wei = min(_gwei_to_wei(max_priority_fee_gwei), self.max_fee_wei)
        self.gas_limit_cap = int(gas_limit_cap)
        self.batch = batch
        self.max_supply = int(max_supply)
        self.contract_uri = contract_uri
        self.gas_headroom = gas_headroom
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_latency_s = poll_latency_s
        # Per node as well as per signer: two chains with the same id (a fresh local chain, another
        # anvil) must not share a nonce counter.
        node = str(getattr(w3.provider, "endpoint_uri", None) or id(w3.provider))
        self._key = (chain_id, signer.address, node)
        self._lock = _signer_lock(self._key)
        self._factory = w3.eth.contract(address=self.factory_address, abi=FACTORY_ABI)

    # ----------------------------------------------------------------- public

    def ensure_contract(self, creator: str, contract_address: str | None, name: str) -> str:
        if contract_address:
            address = self._address(contract_address, "contract_address")
            with self._rpc("get_code"):
                code = self.w3.eth.get_code(address)
            if not code:
                raise MintError(f"No contract at {address}", reason="no_contract", contract=address)
            return address

        creator = self._address(creator, "creator")
        setup_actions: list[bytes] = []
        if creator != self.signer.address:
            grant = self._token_contract(self.factory_address).encode_abi(
                "addPermission", args=[CONTRACT_BASE_ID, self.signer.address, PERMISSION_BIT_ADMIN]
            )
            setup_actions.append(bytes.fromhex(grant[2:]))
        royalty = (0, 0, creator)
        args = [self.contract_uri, name, royalty, creator, setup_actions]

        with self._lock:
            with self._rpc("deterministicContractAddressWithSetupActions"):
                predicted = self._factory.functions.deterministicContractAddressWithSetupActions(
                    self.signer.address, self.contract_uri, name, creator, setup_actions
                ).call()
                exists = bool(self.w3.eth.get_code(predicted))
            if exists:
                return Web3.to_checksum_address(predicted)
            data = self._factory.encode_abi("createContractDeterministic", args=args)
            try:
                receipt = self._transact(self.factory_address, data, "createContract")
            except MintError:
                with self._rpc("get_code"):
                    if self.w3.eth.get_code(predicted):  # created meanwhile by another writer
                        return Web3.to_checksum_address(predicted)
                raise
            events = [
                ev
                for ev in self._factory.events.SetupNewContract().process_receipt(receipt, errors=DISCARD)
                if ev["address"] == self.factory_address
            ]
        if len(events) != 1:
            raise MintError("createContract emitted no SetupNewContract event", reason="reverted")
        address = Web3.to_checksum_address(events[0]["args"]["newContract"])
        if address != Web3.to_checksum_address(predicted):
            raise MintError(
                f"Factory created {address}, expected {predicted}",
                reason="contract_mismatch",
                contract=address,
            )
        log.info("created creator contract", extra={"contract": address, "creator": creator})
        return address

    def mint(
        self, metadata_uri: str, creator: str, contract_address: str, *, journal: MintJournal | None = None
    ) -> Moment:
        return self.mint_detailed(metadata_uri, creator, contract_address, journal=journal).moment

    def mint_detailed(
        self, metadata_uri: str, creator: str, contract_address: str, *, journal: MintJournal | None = None
    ) -> MintOutcome:
        """:meth:`mint`, also returning the transaction hashes and the gas used.

        ``journal`` is called with the pending-mint record of each transaction
        after it is signed and before it is sent (see "Re-runs" in the module doc).
        """
        if not isinstance(metadata_uri, str) or not metadata_uri:
            raise MintError("metadata_uri is empty", reason="config")
        creator = self._address(creator, "creator")
        contract = self._token_contract(self._address(contract_address, "contract_address"))
        with self._lock:
            role = self._role(contract)
            if role is None:
                raise MintError(
                    f"Signer {self.signer.address} may not set up tokens on {contract.address}",
                    reason="not_authorized",
                    contract=contract.address,
                )
            if self.batch and role == "admin":
                outcome = self._mint_batched(contract, metadata_uri, creator, journal)
            else:
                outcome = self._mint_two_txs(contract, metadata_uri, creator, journal)
        log.info(
            "minted moment",
            extra={"contract": contract.address, "token_id": outcome.moment.tokenId, "gas": outcome.gas_used},
        )
        return outcome

    def resume(self, pending: dict[str, Any], *, journal: MintJournal | None = None) -> Moment | None:
        outcome = self.resume_detailed(pending, journal=journal)
        return outcome.moment if outcome is not None else None

    def resume_detailed(
        self, pending: dict[str, Any], *, journal: MintJournal | None = None
    ) -> MintOutcome | None:
        """Settle the transaction of a pending-mint record a killed run left (see "Re-runs").

        The moment once its transaction is mined (sent again when needed), or
        None when it was never mined and never will be: then nothing was minted
        and the caller mints afresh.
        """
        try:
            stage = str(pending["stage"])
            tx = pending["tx"]
            tx_hash, raw, nonce = str(tx["hash"]), str(tx["raw"]), int(tx["nonce"])
            chain_id = int(pending["chain_id"])
            sender = self._address(pending["from"], "from")
            contract = self._token_contract(self._address(pending["contract"], "contract"))
            creator = self._address(pending["creator"], "creator")
            uri = str(pending["uri"])
            expected = int(pending["token_id"]) if pending.get("token_id") not in (None, "") else None
        except (KeyError, TypeError, ValueError, MintError):
            raise MintError("The pending mint record is unreadable", reason="config") from None
        if stage not in _STAGES or (stage == "admin_mint" and expected is None):
            raise MintError(f"The pending mint record has an unknown stage {stage!r}", reason="config")
        if chain_id != self.chain_id:
            raise MintError(
                f"The pending mint is on chain {chain_id}, this minter signs for {self.chain_id}",
                reason="chain_id_mismatch",
                chain_id=chain_id,
            )
        with self._lock:
            self._check_chain()
            receipt = self._settle(tx_hash, raw, nonce, sender, stage)
            if stage == "admin_mint":
                assert expected is not None
                if receipt is None:  # never mined: the token is set up, send its copy again
                    return self._admin_mint(contract, uri, creator, expected, [], journal)
                if receipt["status"] != 1:
                    raise MintError("adminMint reverted", reason="reverted", tx_hash=tx_hash)
                return self._outcome(contract, expected, [receipt], batched=False)
            if receipt is None or receipt["status"] != 1:
                log.warning("pending %s %s was not mined; minting afresh", stage, tx_hash)
                return None
            token_id = self._token_id_from(receipt, contract, uri, sender)
            if stage == "setup":
                return self._admin_mint(contract, uri, creator, token_id, [receipt], journal)
            if expected is not None and token_id != expected:
                raise MintError(
                    f"SetupNewToken gave token {token_id}, expected {expected}",
                    reason="token_id_mismatch",
                    contract=contract.address,
                )
            log.info("resumed moment", extra={"contract": contract.address, "token_id": token_id})
            return self._outcome(contract, token_id, [receipt], batched=True)

    # ---------------------------------------------------------------- minting

    def _journal_step(
        self,
        journal: MintJournal | None,
        stage: str,
        contract: str,
        uri: str,
        creator: str,
        token_id: int | None,
        earlier: tuple[str, ...] = (),
    ) -> Callable[[SignedTx], None] | None:
        """What ``_transact`` calls before sending: the pending-mint record, handed to ``journal``."""
        if journal is None:
            return None
        record = {
            "v": JOURNAL_VERSION,
            "stage": stage,
            "chain_id": self.chain_id,
            "from": self.signer.address,
            "contract": contract,
            "uri": uri,
            "creator": creator,
            "token_id": "" if token_id is None else str(token_id),
            "earlier": list(earlier),
        }

        def before_send(tx: SignedTx) -> None:
            journal({**record, "tx": {"hash": tx.hash, "raw": tx.raw, "nonce": tx.nonce}})

        return before_send

    def _mint_batched(
        self, contract: Any, uri: str, creator: str, journal: MintJournal | None = None
    ) -> MintOutcome:
        for attempt in (1, 2):
            with self._rpc("nextTokenId"):
                next_id = int(contract.functions.nextTokenId().call(block_identifier="latest"))
            calls = [
                contract.encode_abi("assumeLastTokenIdMatches", args=[next_id - 1]),
                contract.encode_abi("setupNewToken", args=[uri, self.max_supply]),
                contract.encode_abi("adminMint", args=[creator, next_id, 1, b""]),
            ]
            data = contract.encode_abi("multicall", args=[[bytes.fromhex(c[2:]) for c in calls]])
            before_send = self._journal_step(journal, "multicall", contract.address, uri, creator, next_id)
            try:
                receipt = self._send(contract.address, data, "multicall", before_send)
            except MintError as exc:
                if attempt == 1 and exc.details.get("revert_data", "").startswith(_TOKEN_ID_MISMATCH):
                    log.warning("token id taken by another writer; retrying", extra={"expected": next_id})
                    continue
                raise
            token_id = self._token_id_from(receipt, contract, uri)
            if token_id != next_id:
                raise MintError(
                    f"SetupNewToken gave token {token_id}, expected {next_id}",
                    reason="token_id_mismatch",
                    contract=contract.address,
                )
            return self._outcome(contract, token_id, [receipt], batched=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _mint_two_txs(
        self, contract: Any, uri: str, creator: str, journal: MintJournal | None = None
    ) -> MintOutcome:
        data = contract.encode_abi("setupNewToken", args=[uri, self.max_supply])
        before_send = self._journal_step(journal, "setup", contract.address, uri, creator, None)
        setup = self._send(contract.address, data, "setupNewToken", before_send)
        token_id = self._token_id_from(setup, contract, uri)
        return self._admin_mint(contract, uri, creator, token_id, [setup], journal)

    def _admin_mint(
        self,
        contract: Any,
        uri: str,
        creator: str,
        token_id: int,
        earlier: list[Any],
        journal: MintJournal | None,
    ) -> MintOutcome:
        data = contract.encode_abi("adminMint", args=[creator, token_id, 1, b""])
        hashes = tuple(_hex(r["transactionHash"]) for r in earlier)
        before_send = self._journal_step(
            journal, "admin_mint", contract.address, uri, creator, token_id, hashes
        )
        minted = self._send(contract.address, data, "adminMint", before_send)
        return self._outcome(contract, token_id, [*earlier, minted], batched=False)

    def _outcome(self, contract: Any, token_id: int, receipts: list[Any], *, batched: bool) -> MintOutcome:
        hashes = tuple(_hex(r["transactionHash"]) for r in receipts)
        moment = Moment(
            contractAddress=contract.address, tokenId=str(token_id), hash=hashes[-1], chainId=self.chain_id
        )
        gas = sum(int(r["gasUsed"]) for r in receipts)
        return MintOutcome(moment=moment, tx_hashes=hashes, gas_used=gas, batched=batched)

    def _token_id_from(self, receipt: Any, contract: Any, uri: str, sender: str | None = None) -> int:
        ids = [
            int(ev["args"]["tokenId"])
            for ev in contract.events.SetupNewToken().process_receipt(receipt, errors=DISCARD)
            if ev["address"] == contract.address
            and ev["args"]["sender"] == (sender or self.signer.address)
            and ev["args"]["newURI"] == uri
        ]
        if len(ids) != 1:
            raise MintError(
                f"Expected one SetupNewToken event, found {len(ids)}",
                reason="token_id_mismatch",
                contract=contract.address,
            )
        return ids[0]

    def _role(self, contract: Any) -> str | None:
        me = self.signer.address
        with self._rpc("isAdminOrRole"):
            if contract.functions.isAdminOrRole(me, CONTRACT_BASE_ID, PERMISSION_BIT_ADMIN).call():
                return "admin"
            if contract.functions.isAdminOrRole(me, CONTRACT_BASE_ID, PERMISSION_BIT_MINTER).call():
                return "minter"
        return None

    # ----------------------------------------------------------- transactions

    def _check_chain(self) -> None:
        with self._rpc("eth_chainId"):
            node_chain = int(self.w3.eth.chain_id)
        if node_chain != self.chain_id:
            raise MintError(
                f"The node is on chain {node_chain}, this minter signs for {self.chain_id}",
                reason="chain_id_mismatch",
                node_chain_id=node_chain,
                chain_id=self.chain_id,
            )

    def _fees(self) -> dict[str, int]:
        with self._rpc("get_block"):
            block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        if base > self.max_fee_wei:
            raise MintError(
                f"Base fee {base} wei is above the cap of {self.max_fee_wei} wei",
                reason="base_fee_above_cap",
                base_fee_wei=base,
                max_fee_wei=self.max_fee_wei,
            )
        tip = self.max_priority_fee_wei
        return {"maxFeePerGas": min(self.max_fee_wei, 2 * base + tip), "maxPriorityFeePerGas": tip}

    def _next_nonce(self) -> int:
        with self._rpc("get_transaction_count"):
            pending = int(self.w3.eth.get_transaction_count(self.signer.address, "pending"))
        return max(pending, _NEXT_NONCE.get(self._key, 0))

    def _send(self, to: str, data: str, label: str, before_send: Callable[[SignedTx], None] | None) -> Any:
        """:meth:`_transact`, journalled when ``before_send`` is given (an unjournalled call keeps
        the three-argument form that the anvil race test wraps)."""
        if before_send is None:
            return self._transact(to, data, label)
        return self._transact(to, data, label, before_send=before_send)

    def _transact(
        self, to: str, data: str, label: str, *, before_send: Callable[[SignedTx], None] | None = None
    ) -> Any:
        """Sign, send and await one transaction (caller holds the signer lock).

        ``before_send`` gets each signed transaction before it is sent (a
        journal; a new signature, e.g. after a refused nonce, is handed over again).
        """
        self._check_chain()
        fees = self._fees()
        call = {"from": self.signer.address, "to": to, "data": data, "value": 0}
        with self._rpc(f"estimate_gas({label})"):
            estimate = int(self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        if estimate > self.gas_limit_cap:
            raise MintError(
                f"{label} needs ~{estimate} gas, above the cap of {self.gas_limit_cap}",
                reason="gas_above_cap",
                gas_estimate=estimate,
                gas_limit_cap=self.gas_limit_cap,
            )
        gas = min(self.gas_limit_cap, math.ceil(estimate * self.gas_headroom))

        tx_hash = None
        for attempt in range(3):
            nonce = self._next_nonce()
            tx = {**call, "chainId": self.chain_id, "nonce": nonce, "gas": gas, "type": 2, **fees}
            tx.pop("from")
            signed = self.signer.sign_transaction(tx)
            if before_send is not None:
                before_send(SignedTx(_hex(signed.hash), _hex(signed.raw_transaction), nonce))
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3Exception, ValueError) as exc:
                text = str(exc).lower()
                if attempt < 2 and any(marker in text for marker in _NONCE_ERRORS):
                    _NEXT_NONCE.pop(self._key, None)
                    log.warning("nonce %s refused (%s); retrying with a fresh nonce", nonce, exc)
                    continue
                raise MintError(
                    f"{label}: the node refused the transaction: {exc}", reason="rpc_error"
                ) from None
            except OSError as exc:
                raise MintError(f"{label}: node unreachable: {exc}", reason="rpc_error") from None
            _NEXT_NONCE[self._key] = nonce + 1
            break
        assert tx_hash is not None
        return self._await(tx_hash, label)

    def _await(self, tx_hash: Any, label: str, *, check_status: bool = True) -> Any:
        """The receipt of a sent transaction (MintError ``timeout``, ``rpc_error``, or ``reverted``
        unless ``check_status`` is False)."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout_s, poll_latency=self.poll_latency_s
            )
        except TimeExhausted:
            _NEXT_NONCE.pop(self._key, None)  # re-read from the node: the tx may have been dropped
            raise MintError(
                f"{label}: no receipt after {self.receipt_timeout_s:g} s",
                reason="timeout",
                tx_hash=_hex(tx_hash),
            ) from None
        except (Web3Exception, OSError) as exc:
            raise MintError(f"{label}: waiting for the receipt failed: {exc}", reason="rpc_error") from None
        if check_status and receipt["status"] != 1:
            raise MintError(f"{label} reverted", reason="reverted", tx_hash=_hex(tx_hash))
        return receipt

    def _receipt(self, tx_hash: str) -> Any:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        with self._rpc("get_transaction_receipt"):
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None

    def _nonce_used(self, sender: str, nonce: int) -> bool:
        with self._rpc("get_transaction_count"):
            return int(self.w3.eth.get_transaction_count(sender, "latest")) > nonce  # type: ignore[arg-type]

    def _settle(self, tx_hash: str, raw: str, nonce: int, sender: str, label: str) -> Any:
        """The receipt of a journalled transaction, sending it again when it is not mined yet.

        None when it was never mined and cannot be any more (its nonce was taken
        by another transaction). A reverted receipt is returned as it is (the
        caller decides). MintError when the node refuses it while its nonce is
        unused (it may still be mined: the journal must keep it).
        """
        receipt = self._receipt(tx_hash)
        if receipt is not None:
            return receipt
        if self._nonce_used(sender, nonce):
            return self._receipt(tx_hash)  # mined in between, else replaced: None
        try:
            self.w3.eth.send_raw_transaction(raw)
            log.info("sent pending %s %s again", label, tx_hash)
        except Exception as exc:  # whatever the node (or eth-tester) raises, the chain state decides
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                return receipt
            if self._nonce_used(sender, nonce):
                return None
            if not any(marker in str(exc).lower() for marker in _KNOWN_TX_ERRORS):
                _NEXT_NONCE.pop(self._key, None)  # the next transaction of this signer re-reads its nonce
                raise MintError(
                    f"{label}: the node refused the pending transaction when it was sent again: {exc}",
                    reason="rpc_error",
                    tx_hash=tx_hash,
                ) from None
        if sender == self.signer.address:
            _NEXT_NONCE[self._key] = max(_NEXT_NONCE.get(self._key, 0), nonce + 1)
        return self._await(tx_hash, label, check_status=False)

    # ---------------------------------------------------------------- helpers

    def _token_contract(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=CREATOR_1155_ABI)

    @staticmethod
    def _address(value: str | None, param: str) -> str:
        if not isinstance(value, str) or not Web3.is_address(value):
            raise MintError(f"{param} is not an address: {value!r}", reason="bad_address", param=param)
        return Web3.to_checksum_address(value)

    @contextmanager
    def _rpc(self, label: str) -> Iterator[None]:
        """Turn web3 / transport failures into MintError (keeping revert data)."""
        try:
            yield
        except MintError:
            raise
        except ContractCustomError as exc:
            data = str(exc.data if isinstance(exc.data, str) else exc.message)
            raise MintError(f"{label} reverted: {data}", reason="reverted", revert_data=data) from None
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else ""
            raise MintError(f"{label} reverted: {exc.message}", reason="reverted", revert_data=data) from None
        except (Web3Exception, OSError, ValueError) as exc:
            raise MintError(f"{label} failed: {exc}", reason="rpc_error") from None


# --------------------------------------------------------------- configuration


class ChainConfig(BaseModel):
    """Chain settings read from ``IMAGEMINT_*`` variables (rpc mode)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chain_rpc_url: str = ""
    chain_id: int = 8453
    chain_local_id: int | None = None
    zora_factory_address: str = ""  # default: the Zora factory proxy of chain_id
    signer_key: SecretStr | None = None  # local / tests: a plain hex key
    signer_key_param: str = ""  # AWS: SSM SecureString name, read through Powertools
    chain_max_fee_gwei: Decimal = Field(default=Decimal("0.5"), gt=0)
    chain_max_priority_fee_gwei: Decimal = Field(default=Decimal("0.01"), ge=0)
    chain_gas_limit_cap: int = Field(default=1_500_000, gt=21_000)
    chain_receipt_timeout_s: float = Field(default=60.0, gt=0)
    contract_uri: str = ""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: Settings | None = None
    ) -> ChainConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            # A field the lead adds to Settings wins over the raw variable.
            value = getattr(settings, name, None) if settings is not None else None
            if value is None:
                value = env.get("IMAGEMINT_" + name.upper())
            if value not in (None, ""):
                values[name] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            names = ", ".join("IMAGEMINT_" + str(e["loc"][0]).upper() for e in exc.errors() if e.get("loc"))
            raise MintError(f"Invalid chain configuration: {names}", reason="config") from None


def _read_signer_key(cfg: ChainConfig, get_parameter: Callable[[str], str] | None) -> str:
    if cfg.signer_key is not None:
        return cfg.signer_key.get_secret_value()
    if cfg.signer_key_param:
        if get_parameter is None:
            from aws_lambda_powertools.utilities import parameters  # lazy: only the mint function pays

            def get_parameter(name: str) -> str:
                return str(parameters.get_parameter(name, decrypt=True, max_age=900))

        return get_parameter(cfg.signer_key_param).strip()
    raise MintError(
        "No signer key: set IMAGEMINT_SIGNER_KEY_PARAM (or IMAGEMINT_SIGNER_KEY locally)", reason="config"
    )


def from_settings(
    settings: Settings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    get_parameter: Callable[[str], str] | None = None,
) -> MomentMinter | None:
    """The minter this process is configured for, or None when ``chain_mode`` is ``off``.

    ``rpc`` -> a :class:`ZoraMinter` on ``IMAGEMINT_CHAIN_RPC_URL`` with the
    signer key from SSM (``IMAGEMINT_SIGNER_KEY_PARAM``, through Powertools
    Parameters, cached 15 min) or, locally, ``IMAGEMINT_SIGNER_KEY``.
    """
    if settings is None:
        from imagemint.settings import get_settings

        settings = get_settings()
    if settings.chain_mode == "off":
        return None
    if settings.chain_mode != "rpc":
        raise MintError(f"chain_mode={settings.chain_mode} has no minter here", reason="config")

    cfg = ChainConfig.from_env(environ, settings)
    if not cfg.chain_rpc_url:
        raise MintError("chain_mode=rpc needs IMAGEMINT_CHAIN_RPC_URL", reason="config")
    factory = cfg.zora_factory_address or ZORA_FACTORY_ADDRESSES.get(cfg.chain_id, "")
    if not factory:
        raise MintError(f"No Zora factory address for chain {cfg.chain_id}", reason="config")
    try:
        signer = Account.from_key(_read_signer_key(cfg, get_parameter))
    except (ValueError, TypeError):
        raise MintError("The signer key is not a valid private key", reason="config") from None
    w3 = Web3(Web3.HTTPProvider(cfg.chain_rpc_url, request_kwargs={"timeout": 15}))
    return ZoraMinter(
        w3,
        factory_address=factory,
        signer=signer,
        chain_id=cfg.chain_id,
        local_chain_id=cfg.chain_local_id,
        max_fee_gwei=cfg.chain_max_fee_gwei,
        max_priority_fee_gwei=cfg.chain_max_priority_fee_gwei,
        gas_limit_cap=cfg.chain_gas_limit_cap,
        receipt_timeout_s=cfg.chain_receipt_timeout_s,
        contract_uri=cfg.contract_uri,
    )
