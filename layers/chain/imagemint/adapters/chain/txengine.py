"""A small EVM transaction engine: one local signer, guarded fees, nonces, receipts, re-sends.

Nothing here knows about Zora: :mod:`.zora` builds the calldata and reads the
events; :class:`TxEngine` signs, sends and awaits the transactions. Every
failure is a :class:`~imagemint.errors.MintError` with a ``reason``.

Nonces and concurrency
    Nonces come from a :class:`~imagemint.domain.ports.NonceAllocator`: in AWS a
    DynamoDB counter per signer and chain (:mod:`imagemint.adapters.aws.nonces`),
    taken atomically, so any number of processes send for one signer at once;
    without one, a process-local counter (:class:`LocalNonceAllocator`). Every
    allocation passes the node's pending nonce as a floor: the counter starts
    there, and catches up when the key was used elsewhere. No lock is held
    while a transaction is awaited.

    A nonce must never stay a gap (every later transaction of the signer would
    wait behind it):

    - refused by the node for its fee (the base fee rose between the check and
      the send): signed again at the same nonce with a fee read from the
      pending block, within the caps;
    - refused for any other reason (e.g. funds): the nonce is filled at once
      with a 0-value transfer to the signer itself, and MintError is raised;
    - taken by something else ("nonce too low"): nothing to fill, a fresh
      nonce is allocated;
    - a process that died after allocating (before or after signing) leaves a
      gap that the next waiter fills: while a transaction is awaited, a node
      pending nonce below it for ``gap_grace_s`` means an earlier nonce is
      missing, and it is filled with the same 0-value transfer. If the dead
      process journalled its transaction, its re-run finds the nonce taken
      (never mined) and mints afresh; the journal keeps it from minting twice.

Stuck transactions (:meth:`TxEngine.await_receipt`)
    A transaction still pending after ``stuck_after_s`` whose ``maxFeePerGas``
    is below the pending block's base fee is replaced, same nonce, with fees
    raised by at least 12.5% (the first tip is 4/5 of the tip cap so a
    replacement can raise it within the cap), never above the caps. Every hash
    sent at a nonce is handed to ``before_send`` (``alts``), so a re-run finds
    whichever was mined. When the base fee is above ``max_fee_gwei`` the
    engine gives up waiting with MintError ``base_fee_above_cap`` (with the
    hash); the transaction stays in the pool and the journal settles it later.

Guards (all raise ``MintError`` before signing)
    - the configured chain id must be 8453 (Base), 84532 (Base Sepolia) or the
      configured local id, and the node's ``eth_chainId`` must equal it
      (checked before every signature);
    - the pending block's base fee must not exceed ``max_fee_gwei`` (EIP-1559
      ``maxFeePerGas`` is ``min(cap, 2 * base + tip)``), checked before a
      nonce is taken;
    - the estimated gas must not exceed ``gas_limit_cap``.
    Receipts are checked for ``status == 1`` unless the caller asks otherwise.

Journalled transactions (:meth:`TxEngine.transact` ``before_send``, :meth:`TxEngine.settle`)
    ``before_send`` gets each signed transaction (hash, raw bytes, nonce and
    the other hashes sent at that nonce) before it is sent, so the caller can
    persist it. A re-run after a crash hands that record to
    :meth:`TxEngine.settle`, which signs nothing new:

    - a receipt exists (for the hash or one of its ``alts``): it is returned
      (reverted or not: the caller decides);
    - no receipt and the sender's nonce is still unused: the same raw
      transaction is sent again (same nonce: it can be mined at most once)
      and awaited;
    - no receipt and the nonce was taken by another transaction (a filler, or
      another mint): it was never mined and never can be; ``settle`` returns None;
    - no receipt, nonce unused, and the node refuses the raw transaction (e.g.
      a balance too low for it now): ``MintError`` (``rpc_error``). It may still
      be mined, so the record must be kept and settled again later.

Cost: :func:`tx_cost` reads gas used, the effective gas price and the fee
paid from a receipt.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
)

from imagemint.domain.ports import PUBLIC_CHAIN_IDS, NonceAllocator
from imagemint.errors import MintError

log = logging.getLogger(__name__)

_TAKEN_ERRORS = ("nonce too low", "invalid nonce", "oldnonce", "nonce has already been used")
_KNOWN_TX_ERRORS = ("already known", "known transaction", "already imported", "alreadyknown")
_FEE_ERRORS = ("less than block base fee", "fee cap less than", "underpriced", "feecaptoolow")
FILL_GAS = 21_000


class LocalNonceAllocator:
    """A process-local :class:`~imagemint.domain.ports.NonceAllocator` (one process per signer).

    Keyed by the node as well (two local chains with the same id must not share a counter).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[tuple[str, int], int] = {}

    def allocate(self, signer: str, chain_id: int, floor: int) -> int:
        with self._lock:
            key = (signer.lower(), chain_id)
            nonce = max(self._next.get(key, 0), floor)
            self._next[key] = nonce + 1
            return nonce


_LOCAL_ALLOCATORS: dict[str, LocalNonceAllocator] = {}
_LOCAL_GUARD = threading.Lock()


def _local_allocator(node: str) -> LocalNonceAllocator:
    with _LOCAL_GUARD:
        return _LOCAL_ALLOCATORS.setdefault(node, LocalNonceAllocator())


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


def tx_cost(receipt: Any) -> dict[str, Any]:
    """What a mined transaction cost: hash, gas used, effective gas price and fee (wei, as strings)."""
    gas = int(receipt["gasUsed"])
    price = int(receipt.get("effectiveGasPrice") or 0)
    return {
        "hash": to_hex(receipt["transactionHash"]),
        "gas_used": gas,
        "effective_gas_price_wei": str(price),
        "fee_wei": str(gas * price),
    }


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction about to be sent: what a re-run needs to find it or send it again."""

    hash: str
    raw: str  # 0x-hex of the raw signed transaction
    nonce: int
    alts: tuple[str, ...] = field(default=())  # other hashes sent at this nonce (replaced ones)


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
        nonces: NonceAllocator | None = None,
        stuck_after_s: float = 6.0,
        gap_grace_s: float = 10.0,
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
        self.stuck_after_s = stuck_after_s
        self.gap_grace_s = gap_grace_s
        node = str(getattr(w3.provider, "endpoint_uri", None) or id(w3.provider))
        self.nonces: NonceAllocator = nonces if nonces is not None else _local_allocator(node)

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

    def base_fee(self) -> int:
        """The base fee the next block will charge (the pending block's; the latest's where there is none)."""
        with self.rpc("get_block"):
            try:
                block = self.w3.eth.get_block("pending")
            except (Web3Exception, ValueError):
                block = self.w3.eth.get_block("latest")
        return int(block.get("baseFeePerGas") or 0)

    def _above_cap(self, base: int, **details: Any) -> MintError:
        return MintError(
            f"Base fee {base} wei is above the cap of {self.max_fee_wei} wei",
            reason="base_fee_above_cap",
            base_fee_wei=base,
            max_fee_wei=self.max_fee_wei,
            **details,
        )

    def fees(self, base: int | None = None) -> dict[str, int]:
        """EIP-1559 fee fields for the next transaction (MintError ``base_fee_above_cap``)."""
        base = self.base_fee() if base is None else base
        if base > self.max_fee_wei:
            raise self._above_cap(base)
        tip = self.max_priority_fee_wei * 4 // 5  # room for one replacement within the cap
        return {"maxFeePerGas": min(self.max_fee_wei, 2 * base + tip), "maxPriorityFeePerGas": tip}

    def bumped(self, old: dict[str, int], base: int) -> dict[str, int] | None:
        """Fees replacing ``old`` (both up by >= 12.5%) that clear ``base`` within the caps; else None."""
        tip = min(self.max_priority_fee_wei, max(old["maxPriorityFeePerGas"] * 9 // 8 + 1, 1))
        fee = min(self.max_fee_wei, max(old["maxFeePerGas"] * 9 // 8 + 1, 2 * base + tip))
        if fee < base or fee * 8 < old["maxFeePerGas"] * 9:
            return None
        return {"maxFeePerGas": fee, "maxPriorityFeePerGas": tip}

    def pending_nonce(self) -> int:
        with self.rpc("get_transaction_count"):
            return int(self.w3.eth.get_transaction_count(self.signer.address, "pending"))

    def allocate_nonce(self) -> int:
        """The next nonce from the allocator, never below the node's pending nonce."""
        try:
            return int(self.nonces.allocate(self.signer.address, self.chain_id, self.pending_nonce()))
        except MintError:
            raise
        except Exception as exc:  # the allocator's store (DynamoDB) failed: nothing was signed
            raise MintError(f"Allocating a nonce failed: {exc}", reason="rpc_error") from None

    # ------------------------------------------------------------ transactions

    def transact(
        self, to: str, data: str, label: str, *, before_send: Callable[[SignedTx], None] | None = None
    ) -> Any:
        """Sign, send and await one transaction; its receipt (status 1).

        ``before_send`` gets each signed transaction before it is sent (a
        journal; a new signature, e.g. a replacement, is handed over again).
        """
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
        body = {"to": to, "data": data, "value": 0, "gas": gas}
        signed = self.send(body, fees, label, before_send)
        return self.await_receipt(signed.hash, label, resend=(body, fees, signed, before_send))

    def _sign(
        self, body: dict[str, Any], fees: dict[str, int], nonce: int, alts: tuple[str, ...]
    ) -> SignedTx:
        tx = {**body, "chainId": self.chain_id, "nonce": nonce, "type": 2, **fees}
        signed = self.signer.sign_transaction(tx)
        return SignedTx(to_hex(signed.hash), to_hex(signed.raw_transaction), nonce, alts)

    def send(
        self,
        body: dict[str, Any],
        fees: dict[str, int],
        label: str,
        before_send: Callable[[SignedTx], None] | None = None,
        *,
        nonce: int | None = None,
        alts: tuple[str, ...] = (),
    ) -> SignedTx:
        """Sign ``body`` at a fresh nonce (or ``nonce``), hand it to ``before_send``, send it.

        Fills the nonce when the node refuses the transaction (see the module doc).
        """
        fixed = nonce is not None
        for _attempt in range(4):
            if nonce is None:
                nonce = self.allocate_nonce()
            signed = self._sign(body, fees, nonce, alts)
            if before_send is not None:
                before_send(signed)
            try:
                self.w3.eth.send_raw_transaction(signed.raw)
                return signed
            except OSError as exc:  # it may have arrived: the journal and the gap filler settle it
                raise MintError(
                    f"{label}: node unreachable: {exc}", reason="rpc_error", nonce=nonce
                ) from None
            except Exception as exc:  # web3, the node or eth-tester refused it: the nonce decides
                text = str(exc).lower()
                if any(marker in text for marker in _KNOWN_TX_ERRORS):
                    return signed  # the node has it already
                pending = self.pending_nonce()
                if (
                    pending > nonce
                    or any(m in text for m in _TAKEN_ERRORS)
                    or ("replacement" in text and not fixed)
                ):
                    if fixed:
                        raise MintError(
                            f"{label}: nonce {nonce} is taken", reason="rpc_error", nonce=nonce
                        ) from None
                    log.warning("nonce %s is taken (%s); allocating another", nonce, exc)
                    nonce = None
                    continue
                if pending < nonce and "nonce" in text:
                    # A node that does not queue future nonces (eth-tester): fill the gap below, then send.
                    for gap in range(pending, min(nonce, pending + 16)):
                        self.fill(gap)
                    continue
                if any(marker in text for marker in _FEE_ERRORS):
                    base = self.base_fee()
                    new = self.bumped(fees, base)
                    if new is None:
                        self.fill(nonce)
                        raise self._above_cap(base) from None
                    log.warning("%s: fee refused (%s); signing again with %s", label, exc, new)
                    alts, fees = (*alts, signed.hash), new
                    continue
                self.fill(nonce)
                raise MintError(
                    f"{label}: the node refused the transaction: {exc}", reason="rpc_error", nonce=nonce
                ) from None
        raise MintError(f"{label}: the node kept refusing the transaction", reason="rpc_error")

    def fill(self, nonce: int) -> str | None:
        """Take ``nonce`` with a 0-value transfer to the signer itself, so that no gap is left.

        Its hash, or None when the node would not take it (the nonce is used, or cannot be now).
        """
        try:
            base = self.base_fee()
            fees = self.fees(base)
            body = {"to": self.signer.address, "value": 0, "gas": FILL_GAS, "data": b""}
            signed = self._sign(body, fees, nonce, ())
            self.w3.eth.send_raw_transaction(signed.raw)
        except Exception as exc:  # noqa: BLE001 - the node's refusal, whatever its type: the nonce stays
            log.warning("could not fill nonce %s: %s", nonce, exc)
            return None
        log.warning("filled nonce %s with a 0-value transfer %s", nonce, signed.hash)
        return signed.hash

    def await_receipt(
        self,
        tx_hash: Any,
        label: str,
        *,
        check_status: bool = True,
        resend: tuple[dict[str, Any], dict[str, int], SignedTx, Any] | None = None,
        nonce: int | None = None,
        alts: tuple[str, ...] = (),
    ) -> Any:
        """The receipt of a sent transaction (MintError ``timeout``, ``rpc_error``,
        ``base_fee_above_cap``, or ``reverted`` unless ``check_status`` is False).

        While waiting it fills a nonce gap below the transaction and, given
        ``resend`` (body, fees, signed tx, before_send), replaces it when it is stuck
        below the base fee (see the module doc).
        """
        hashes = [*alts, to_hex(tx_hash)]
        if resend is not None:
            nonce = resend[2].nonce
            hashes = [*resend[2].alts, resend[2].hash]
        started = time.monotonic()
        deadline = started + self.receipt_timeout_s
        gap_seen: float | None = None
        last_check = started
        while True:
            for h in reversed(hashes):
                receipt = self.receipt(h)
                if receipt is not None:
                    if check_status and receipt["status"] != 1:
                        raise MintError(f"{label} reverted", reason="reverted", tx_hash=h)
                    return receipt
            now = time.monotonic()
            if now > deadline:
                raise MintError(
                    f"{label}: no receipt after {self.receipt_timeout_s:g} s",
                    reason="timeout",
                    tx_hash=hashes[-1],
                )
            if nonce is not None and now - last_check >= min(self.stuck_after_s, self.gap_grace_s) / 2:
                last_check = now
                pending = self.pending_nonce()
                if pending < nonce:  # an earlier nonce is missing: our transaction waits behind a gap
                    gap_seen = gap_seen if gap_seen is not None else now
                    if now - gap_seen >= self.gap_grace_s:
                        self.fill(pending)
                        gap_seen = None
                else:
                    gap_seen = None
                if resend is not None and now - started >= self.stuck_after_s:
                    body, fees, signed, before_send = resend
                    base = self.base_fee()
                    if fees["maxFeePerGas"] < base:
                        new = self.bumped(fees, base)
                        if new is None:
                            raise self._above_cap(base, tx_hash=hashes[-1], nonce=nonce)
                        log.warning("%s %s is stuck below base fee %s; replacing", label, hashes[-1], base)
                        try:
                            signed = self.send(body, new, label, before_send, nonce=nonce, alts=tuple(hashes))
                        except MintError as exc:
                            receipt = next((r for r in map(self.receipt, hashes) if r is not None), None)
                            if receipt is not None:
                                continue  # mined meanwhile
                            raise exc
                        hashes.append(signed.hash)
                        resend = (body, new, signed, before_send)
                        started = now
            time.sleep(self.poll_latency_s)

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

    def settle(
        self, tx_hash: str, raw: str, nonce: int, sender: str, label: str, alts: tuple[str, ...] = ()
    ) -> Any:
        """The receipt of a journalled transaction, sending it again when it is not mined yet.

        ``alts``: other hashes sent at the same nonce (replacements); whichever was mined counts.
        None when none was mined and none can be any more (the nonce was taken
        by another transaction). A reverted receipt is returned as it is (the
        caller decides). MintError when the node refuses it while its nonce is
        unused (it may still be mined: the journal must keep it).
        """
        hashes = (*alts, tx_hash)

        def mined() -> Any:
            return next((r for r in map(self.receipt, hashes) if r is not None), None)

        receipt = mined()
        if receipt is not None:
            return receipt
        if self.nonce_used(sender, nonce):
            return mined()  # mined in between, else replaced: None
        try:
            self.w3.eth.send_raw_transaction(raw)
            log.info("sent pending %s %s again", label, tx_hash)
        except Exception as exc:  # whatever the node (or eth-tester) raises, the chain state decides
            receipt = mined()
            if receipt is not None:
                return receipt
            if self.nonce_used(sender, nonce):
                return None
            if not any(marker in str(exc).lower() for marker in _KNOWN_TX_ERRORS):
                raise MintError(
                    f"{label}: the node refused the pending transaction when it was sent again: {exc}",
                    reason="rpc_error",
                    tx_hash=tx_hash,
                ) from None
        own = sender == self.signer.address
        return self.await_receipt(
            tx_hash, label, check_status=False, nonce=nonce if own else None, alts=tuple(alts)
        )

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
