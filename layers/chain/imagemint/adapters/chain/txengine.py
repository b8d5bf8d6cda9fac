"""A small EVM transaction engine: one local signer, guarded fees, nonces, receipts, re-sends.

Nothing here knows about Zora: :mod:`.zora` builds the calldata and reads the
events; :class:`TxEngine` signs, sends and awaits the transactions. Every
failure is a :class:`~imagemint.errors.MintError` with a ``reason``.

Nonces and concurrency
    Every transaction of one signer (per chain and node) is built, signed,
    sent and awaited under a process-wide lock (:attr:`TxEngine.lock`, which
    callers also hold around their reads, e.g. the next token id), with the
    nonce taken as ``max(eth_getTransactionCount(pending), last used + 1)``.
    Holding the lock until the receipt keeps gas estimation exact and leaves
    no nonce gap after a failure; the price is one transaction per block per
    signer (~2 s on Base), which the asynchronous mint step absorbs.

    The lock does not reach other processes. In AWS the mint function must run
    with reserved concurrency 1 per signer key (one signer per concurrency-1
    mint function; add signers and functions to scale out). Other processes
    using the same key by mistake do not corrupt anything: a taken nonce is
    answered with "nonce too low" and retried with a fresh nonce. A DynamoDB
    nonce counter was not built: with the lock held through the receipt it
    would buy nothing while a single writer per key is the rule.

Guards (all raise ``MintError`` before signing)
    - the configured chain id must be 8453 (Base), 84532 (Base Sepolia) or the
      configured local id, and the node's ``eth_chainId`` must equal it
      (checked before every signature);
    - the latest base fee must not exceed ``max_fee_gwei`` (EIP-1559
      ``maxFeePerGas`` is ``min(cap, 2 * base + tip)``, the tip at most
      ``max_priority_fee_gwei``);
    - the estimated gas must not exceed ``gas_limit_cap``.
    Receipts are checked for ``status == 1`` unless the caller asks otherwise.

Journalled transactions (:meth:`TxEngine.transact` ``before_send``, :meth:`TxEngine.settle`)
    ``before_send`` gets each signed transaction (hash, raw bytes, nonce)
    before it is sent, so the caller can persist it. A re-run after a crash
    hands that record to :meth:`TxEngine.settle`, which signs nothing new:

    - a receipt exists: it is returned (reverted or not: the caller decides);
    - no receipt and the sender's nonce is still unused: the same raw
      transaction is sent again (same nonce: it can be mined at most once)
      and awaited;
    - no receipt and the nonce was taken by another transaction: it was never
      mined and never can be; ``settle`` returns None;
    - no receipt, nonce unused, and the node refuses the raw transaction (e.g.
      a balance too low for it now): ``MintError`` (``rpc_error``). It may still
      be mined, so the record must be kept and settled again later.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
)

from imagemint.domain.ports import PUBLIC_CHAIN_IDS
from imagemint.errors import MintError

log = logging.getLogger(__name__)

_NONCE_ERRORS = ("nonce too low", "invalid nonce", "already known", "replacement transaction underpriced")
_KNOWN_TX_ERRORS = ("already known", "known transaction", "already imported", "alreadyknown")

# Process-wide per-signer state, keyed by (chain id, signer address, node).
_STATE_GUARD = threading.Lock()
_SIGNER_LOCKS: dict[tuple[int, str, str], threading.RLock] = {}
_NEXT_NONCE: dict[tuple[int, str, str], int] = {}


def _signer_lock(key: tuple[int, str, str]) -> threading.RLock:
    with _STATE_GUARD:
        lock = _SIGNER_LOCKS.get(key)
        if lock is None:
            lock = _SIGNER_LOCKS[key] = threading.RLock()
        return lock


def gwei_to_wei(value: float | Decimal | str) -> int:
    return int(Decimal(str(value)) * 10**9)


def to_hex(value: Any) -> str:
    """``0x``-hex of a hash or raw transaction (bytes, HexBytes or already a string)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    method = getattr(value, "to_0x_hex", None)
    return method() if method else str(value)


def checksum_address(value: str | None, param: str) -> str:
    """``value`` as a checksummed address; MintError ``bad_address`` naming ``param`` otherwise."""
    if not isinstance(value, str) or not Web3.is_address(value):
        raise MintError(f"{param} is not an address: {value!r}", reason="bad_address", param=param)
    return Web3.to_checksum_address(value)


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction about to be sent: what a re-run needs to find it or send it again."""

    hash: str
    raw: str  # 0x-hex of the raw signed transaction
    nonce: int


class TxEngine:
    """Signs, sends and awaits the transactions of one local signer on one node (see module doc)."""

    def __init__(
        self,
        w3: Web3,
        *,
        signer: LocalAccount,
        chain_id: int,
        max_fee_gwei: float | Decimal | str,
        max_priority_fee_gwei: float | Decimal | str,
        gas_limit_cap: int,
        local_chain_id: int | None = None,
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
        self.max_fee_wei = gwei_to_wei(max_fee_gwei)
        self.max_priority_fee_wei = min(gwei_to_wei(max_priority_fee_gwei), self.max_fee_wei)
        self.gas_limit_cap = int(gas_limit_cap)
        self.gas_headroom = gas_headroom
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_latency_s = poll_latency_s
        # Per node as well as per signer: two chains with the same id (a fresh local chain, another
        # anvil) must not share a nonce counter.
        node = str(getattr(w3.provider, "endpoint_uri", None) or id(w3.provider))
        self._key = (chain_id, signer.address, node)
        #: Held through every transaction of this signer; re-entrant, shared by every engine of the key.
        self.lock = _signer_lock(self._key)

    # ------------------------------------------------------------------ guards

    def check_chain(self) -> None:
        """MintError ``chain_id_mismatch`` unless the node is on the chain this engine signs for."""
        with self.rpc("eth_chainId"):
            node_chain = int(self.w3.eth.chain_id)
        if node_chain != self.chain_id:
            raise MintError(
                f"The node is on chain {node_chain}, this minter signs for {self.chain_id}",
                reason="chain_id_mismatch",
                node_chain_id=node_chain,
                chain_id=self.chain_id,
            )

    def fees(self) -> dict[str, int]:
        """EIP-1559 fee fields for the next transaction (MintError ``base_fee_above_cap``)."""
        with self.rpc("get_block"):
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
        with self.rpc("get_transaction_count"):
            pending = int(self.w3.eth.get_transaction_count(self.signer.address, "pending"))
        return max(pending, _NEXT_NONCE.get(self._key, 0))

    # ------------------------------------------------------------ transactions

    def transact(
        self, to: str, data: str, label: str, *, before_send: Callable[[SignedTx], None] | None = None
    ) -> Any:
        """Sign, send and await one transaction; its receipt (status 1).

        ``before_send`` gets each signed transaction before it is sent (a
        journal; a new signature, e.g. after a refused nonce, is handed over
        again). The caller holds :attr:`lock` when it read state the
        transaction depends on.
        """
        with self.lock:
            return self._transact(to, data, label, before_send)

    def _transact(
        self, to: str, data: str, label: str, before_send: Callable[[SignedTx], None] | None
    ) -> Any:
        self.check_chain()
        fees = self.fees()
        call = {"from": self.signer.address, "to": to, "data": data, "value": 0}
        with self.rpc(f"estimate_gas({label})"):
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
                before_send(SignedTx(to_hex(signed.hash), to_hex(signed.raw_transaction), nonce))
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
        return self.await_receipt(tx_hash, label)

    def await_receipt(self, tx_hash: Any, label: str, *, check_status: bool = True) -> Any:
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
                tx_hash=to_hex(tx_hash),
            ) from None
        except (Web3Exception, OSError) as exc:
            raise MintError(f"{label}: waiting for the receipt failed: {exc}", reason="rpc_error") from None
        if check_status and receipt["status"] != 1:
            raise MintError(f"{label} reverted", reason="reverted", tx_hash=to_hex(tx_hash))
        return receipt

    def receipt(self, tx_hash: str) -> Any:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        with self.rpc("get_transaction_receipt"):
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None

    def nonce_used(self, sender: str, nonce: int) -> bool:
        """True once a mined transaction of ``sender`` holds ``nonce``."""
        with self.rpc("get_transaction_count"):
            return int(self.w3.eth.get_transaction_count(sender, "latest")) > nonce  # type: ignore[arg-type]

    def settle(self, tx_hash: str, raw: str, nonce: int, sender: str, label: str) -> Any:
        """The receipt of a journalled transaction, sending it again when it is not mined yet.

        None when it was never mined and cannot be any more (its nonce was taken
        by another transaction). A reverted receipt is returned as it is (the
        caller decides). MintError when the node refuses it while its nonce is
        unused (it may still be mined: the journal must keep it).
        """
        with self.lock:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            if self.nonce_used(sender, nonce):
                return self.receipt(tx_hash)  # mined in between, else replaced: None
            try:
                self.w3.eth.send_raw_transaction(raw)
                log.info("sent pending %s %s again", label, tx_hash)
            except Exception as exc:  # whatever the node (or eth-tester) raises, the chain state decides
                receipt = self.receipt(tx_hash)
                if receipt is not None:
                    return receipt
                if self.nonce_used(sender, nonce):
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
            return self.await_receipt(tx_hash, label, check_status=False)

    # ----------------------------------------------------------------- errors

    @contextmanager
    def rpc(self, label: str) -> Iterator[None]:
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
