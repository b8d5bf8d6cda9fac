"""Minting moments through the Zora 1155 protocol (as In Process does on Base).

One creator = one ``ZoraCreator1155`` contract, created through the
``ZoraCreator1155Factory`` proxy. One moment = one new token on it
(``setupNewToken(uri, maxSupply)``) plus one copy minted to the creator
(``adminMint(creator, tokenId, 1, "")``).

The module is the protocol only: the ABI fragments and addresses are in
:mod:`.abi`; signing, nonces, fee and gas guards, receipts and re-sending a
journalled transaction are the generic :class:`~.txengine.TxEngine`'s (its
module doc has the rules).

Transactions
    When the signer is an admin of the creator's contract, the token is set up
    and minted in ONE transaction through the contract's ``multicall``
    (:meth:`ZoraMinter.mint_many` puts up to ten moments in one, the token ids
    consecutive: ``setupNewToken`` / ``adminMint`` pairs after one
    ``assumeLastTokenIdMatches``)::

        multicall([assumeLastTokenIdMatches(next - 1),
                   setupNewToken(uri, maxSupply),
                   adminMint(creator, next, 1, "")])

    ``next`` is read from ``nextTokenId()`` under a per-contract lock (across
    processes the mint step's coordinator sends for one contract at a time); the
    contract's own ``assumeLastTokenIdMatches`` makes the whole transaction
    revert if another writer took that id first (caught at gas estimation it
    is retried once with a fresh id; caught when mined it fails as
    ``reverted``), and the id in the ``SetupNewToken`` event is checked
    against ``next`` afterwards. A signer that is only a minter (not an admin) uses two
    transactions: ``setupNewToken``, then ``adminMint`` with the event's id.
    Another process minting with the same key by mistake corrupts nothing: a
    taken token id makes the multicall revert on the contract's own guard.

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
    (:meth:`~.txengine.TxEngine.settle`) without signing anything new for the
    same step:

    - a receipt exists: the moment comes from it (the token id from its
      ``SetupNewToken`` event);
    - no receipt and the sender's nonce is still unused: the same raw
      transaction is sent again and awaited;
    - no receipt and the nonce was taken by another transaction: it was
      never mined and never can be, so ``resume`` returns None and the caller
      mints afresh; a reverted multicall or ``setupNewToken`` also returns
      None (nothing was set up);
    - no receipt, nonce unused, and the node refuses the raw transaction (e.g.
      a balance too low for it now): ``MintError`` (``rpc_error``), the
      record stays as it is. Minting afresh here could mint twice should the
      refused transaction still be mined, so the next re-run settles it
      again; once anything else of this signer takes the nonce, that is
      final and the re-run mints afresh.

    After a two-transaction mint's ``setupNewToken`` only the ``adminMint``
    is sent again, for the token already set up.

Receipts are decoded with ``errors=DISCARD`` (other contracts' events in the
receipt are ignored). Every failure raises
:class:`~imagemint.errors.MintError` with a ``reason``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from imagemint.adapters.chain.abi import (
    CONTRACT_BASE_ID,
    CREATOR_1155_ABI,
    FACTORY_ABI,
    OPEN_EDITION_SUPPLY,
    PERMISSION_BIT_ADMIN,
    PERMISSION_BIT_MINTER,
    TOKEN_ID_MISMATCH,
    ZORA_FACTORY_ADDRESSES,
)
from imagemint.adapters.chain.config import ChainConfig
from imagemint.adapters.chain.txengine import SignedTx, TxEngine, checksum_address, to_hex, tx_cost
from imagemint.domain.ports import Moment, MomentMinter, NonceAllocator
from imagemint.errors import MintError

if TYPE_CHECKING:
    from imagemint.settings import Settings

log = logging.getLogger(__name__)

#: Version of the pending-mint records written through a journal.
JOURNAL_VERSION = 1
_STAGES = ("multicall", "setup", "admin_mint")

#: Persists a pending-mint record (a JSON-ready dict) before its transaction is sent.
MintJournal = Callable[[dict[str, Any]], None]

#: Most moments one multicall carries (the gas per moment hardly drops beyond).
MAX_BATCH = 10
#: An upper bound of one moment's gas in a multicall (estimates: ~205k each in a batch, 2.03M for ten
#: on a fresh contract), used to size batches under the gas cap.
GAS_PER_MOMENT_BOUND = 230_000

# In-process locks per (chain id, contract): token ids are read and used under them. Across processes
# the mint step's batch coordinator (imagemint.domain.batching) gives one sender per contract at a time.
_GUARD = threading.Lock()
_CONTRACT_LOCKS: dict[tuple[int, str], threading.RLock] = {}


def _contract_lock(chain_id: int, address: str) -> threading.RLock:
    with _GUARD:
        return _CONTRACT_LOCKS.setdefault((chain_id, address.lower()), threading.RLock())


@dataclass(frozen=True)
class MintOutcome:
    """A minted moment with what it cost (for logs, metrics and tests)."""

    moment: Moment
    tx_hashes: tuple[str, ...]
    gas_used: int
    batched: bool
    #: Per transaction: hash, gas_used, effective_gas_price_wei, fee_wei, and ``moments`` (how many
    #: moments it minted: this moment's share is 1/moments of it).
    costs: tuple[dict[str, Any], ...] = ()


class ZoraMinter(MomentMinter):
    """Mints moments on Zora 1155 contracts with one local signer (see module doc).

    The engine options (signer, chain id, fee and gas caps, timeouts) build its
    :class:`~.txengine.TxEngine`, kept as ``tx``.
    """

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
        nonces: NonceAllocator | None = None,
        stuck_after_s: float = 6.0,
        gap_grace_s: float = 10.0,
    ) -> None:
        self.tx = TxEngine(
            w3,
            signer=signer,
            chain_id=chain_id,
            max_fee_gwei=max_fee_gwei,
            max_priority_fee_gwei=max_priority_fee_gwei,
            gas_limit_cap=gas_limit_cap,
            local_chain_id=local_chain_id,
            gas_headroom=gas_headroom,
            receipt_timeout_s=receipt_timeout_s,
            poll_latency_s=poll_latency_s,
            nonces=nonces,
            stuck_after_s=stuck_after_s,
            gap_grace_s=gap_grace_s,
        )
        self.w3 = w3
        self.signer = signer
        self.chain_id = chain_id
        self.factory_address = checksum_address(factory_address, "factory_address")
        self.batch = batch
        self.max_supply = int(max_supply)
        self.contract_uri = contract_uri
        self._factory = w3.eth.contract(address=self.factory_address, abi=FACTORY_ABI)

    # ----------------------------------------------------------------- public

    def ensure_contract(self, creator: str, contract_address: str | None, name: str) -> str:
        if contract_address:
            address = checksum_address(contract_address, "contract_address")
            with self.tx.rpc("get_code"):
                code = self.w3.eth.get_code(address)
            if not code:
                raise MintError(f"No contract at {address}", reason="no_contract", contract=address)
            return address

        creator = checksum_address(creator, "creator")
        setup_actions: list[bytes] = []
        if creator != self.signer.address:
            grant = self._token_contract(self.factory_address).encode_abi(
                "addPermission", args=[CONTRACT_BASE_ID, self.signer.address, PERMISSION_BIT_ADMIN]
            )
            setup_actions.append(bytes.fromhex(grant[2:]))
        royalty = (0, 0, creator)
        args = [self.contract_uri, name, royalty, creator, setup_actions]

        with self.tx.rpc("deterministicContractAddressWithSetupActions"):
            predicted = self._factory.functions.deterministicContractAddressWithSetupActions(
                self.signer.address, self.contract_uri, name, creator, setup_actions
            ).call()
        with _contract_lock(self.chain_id, predicted):
            with self.tx.rpc("get_code"):
                exists = bool(self.w3.eth.get_code(predicted))
            if exists:
                return Web3.to_checksum_address(predicted)
            data = self._factory.encode_abi("createContractDeterministic", args=args)
            try:
                receipt = self.tx.transact(self.factory_address, data, "createContract")
            except MintError:
                with self.tx.rpc("get_code"):
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
        """:meth:`mint`, also returning the transaction hashes, the gas used and the cost.

        ``journal`` is called with the pending-mint record of each transaction
        after it is signed and before it is sent (see "Re-runs" in the module doc).
        """
        return self.mint_many(contract_address, [(metadata_uri, creator)], [journal])[0]

    def mint_many(
        self,
        contract_address: str,
        items: list[tuple[str, str]],
        journals: list[MintJournal | None] | None = None,
    ) -> list[MintOutcome]:
        """Mint one moment per ``(metadata_uri, creator)`` on one contract, in ONE multicall.

        Token ids are consecutive from ``nextTokenId()`` in the order given; the
        outcomes come back in that order. ``journals[i]`` gets item ``i``'s
        pending-mint record (the shared transaction, its own uri and token id)
        before the transaction is sent, so each job's re-run settles its part.
        At most :data:`MAX_BATCH` items. A signer that is only a minter mints
        them one after another with two transactions each.
        """
        if not items or len(items) > MAX_BATCH:
            raise MintError(f"mint_many takes 1 to {MAX_BATCH} moments, not {len(items)}", reason="config")
        journals = list(journals) if journals is not None else [None] * len(items)
        if len(journals) != len(items):
            raise MintError("mint_many needs one journal per moment", reason="config")
        checked = []
        for uri, creator in items:
            if not isinstance(uri, str) or not uri:
                raise MintError("metadata_uri is empty", reason="config")
            checked.append((uri, checksum_address(creator, "creator")))
        if len({uri for uri, _ in checked}) != len(checked):
            raise MintError("mint_many needs distinct metadata URIs", reason="config")
        contract = self._token_contract(checksum_address(contract_address, "contract_address"))
        with _contract_lock(self.chain_id, contract.address):
            role = self._role(contract)
            if role is None:
                raise MintError(
                    f"Signer {self.signer.address} may not set up tokens on {contract.address}",
                    reason="not_authorized",
                    contract=contract.address,
                )
            if self.batch and role == "admin":
                outcomes = self._mint_batched(contract, checked, journals)
            else:
                outcomes = [
                    self._mint_two_txs(contract, uri, creator, journal)
                    for (uri, creator), journal in zip(checked, journals, strict=True)
                ]
        for outcome in outcomes:
            log.info(
                "minted moment",
                extra={
                    "contract": contract.address,
                    "token_id": outcome.moment.tokenId,
                    "gas": outcome.gas_used,
                    "batch": len(outcomes),
                },
            )
        return outcomes

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
            alts = tuple(str(h) for h in tx.get("alts") or ())
            chain_id = int(pending["chain_id"])
            sender = checksum_address(pending["from"], "from")
            contract = self._token_contract(checksum_address(pending["contract"], "contract"))
            creator = checksum_address(pending["creator"], "creator")
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
        with _contract_lock(self.chain_id, contract.address):
            self.tx.check_chain()
            receipt = self.tx.settle(tx_hash, raw, nonce, sender, stage, alts)
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
            return self._outcome(
                contract, token_id, [receipt], batched=True, share=int(pending.get("batch") or 1)
            )

    @property
    def max_batch(self) -> int:
        """How many moments one multicall may carry under the gas cap (at most :data:`MAX_BATCH`)."""
        return max(1, min(MAX_BATCH, self.tx.gas_limit_cap // GAS_PER_MOMENT_BOUND))

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
        *,
        batch: int = 1,
    ) -> Callable[[SignedTx], None] | None:
        """What the engine calls before sending: the pending-mint record, handed to ``journal``."""
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
            "batch": batch,
        }

        def before_send(tx: SignedTx) -> None:
            journal(
                {**record, "tx": {"hash": tx.hash, "raw": tx.raw, "nonce": tx.nonce, "alts": list(tx.alts)}}
            )

        return before_send

    def _mint_batched(
        self, contract: Any, items: list[tuple[str, str]], journals: list[MintJournal | None]
    ) -> list[MintOutcome]:
        n = len(items)
        for attempt in (1, 2):
            with self.tx.rpc("nextTokenId"):
                next_id = int(contract.functions.nextTokenId().call(block_identifier="latest"))
            calls = [contract.encode_abi("assumeLastTokenIdMatches", args=[next_id - 1])]
            for i, (uri, creator) in enumerate(items):
                calls.append(contract.encode_abi("setupNewToken", args=[uri, self.max_supply]))
                calls.append(contract.encode_abi("adminMint", args=[creator, next_id + i, 1, b""]))
            data = contract.encode_abi("multicall", args=[[bytes.fromhex(c[2:]) for c in calls]])
            steps = [
                self._journal_step(journal, "multicall", contract.address, uri, creator, next_id + i, batch=n)
                for i, ((uri, creator), journal) in enumerate(zip(items, journals, strict=True))
            ]

            def before_send(tx: SignedTx, steps: list[Any] = steps) -> None:
                for step in steps:
                    if step is not None:
                        step(tx)

            try:
                receipt = self.tx.transact(contract.address, data, "multicall", before_send=before_send)
            except MintError as exc:
                if attempt == 1 and exc.details.get("revert_data", "").startswith(TOKEN_ID_MISMATCH):
                    log.warning("token id taken by another writer; retrying", extra={"expected": next_id})
                    continue
                raise
            outcomes = []
            for i, (uri, _creator) in enumerate(items):
                token_id = self._token_id_from(receipt, contract, uri)
                if token_id != next_id + i:
                    raise MintError(
                        f"SetupNewToken gave token {token_id}, expected {next_id + i}",
                        reason="token_id_mismatch",
                        contract=contract.address,
                    )
                outcomes.append(self._outcome(contract, token_id, [receipt], batched=True, share=n))
            return outcomes
        raise AssertionError("unreachable")  # pragma: no cover

    def _mint_two_txs(
        self, contract: Any, uri: str, creator: str, journal: MintJournal | None = None
    ) -> MintOutcome:
        data = contract.encode_abi("setupNewToken", args=[uri, self.max_supply])
        before_send = self._journal_step(journal, "setup", contract.address, uri, creator, None)
        setup = self.tx.transact(contract.address, data, "setupNewToken", before_send=before_send)
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
        hashes = tuple(to_hex(r["transactionHash"]) for r in earlier)
        before_send = self._journal_step(
            journal, "admin_mint", contract.address, uri, creator, token_id, hashes
        )
        minted = self.tx.transact(contract.address, data, "adminMint", before_send=before_send)
        return self._outcome(contract, token_id, [*earlier, minted], batched=False)

    def _outcome(
        self, contract: Any, token_id: int, receipts: list[Any], *, batched: bool, share: int = 1
    ) -> MintOutcome:
        hashes = tuple(to_hex(r["transactionHash"]) for r in receipts)
        moment = Moment(
            contractAddress=contract.address, tokenId=str(token_id), hash=hashes[-1], chainId=self.chain_id
        )
        gas = sum(int(r["gasUsed"]) for r in receipts)
        costs = tuple({**tx_cost(r), "moments": share if batched else 1} for r in receipts)
        return MintOutcome(moment=moment, tx_hashes=hashes, gas_used=gas, batched=batched, costs=costs)

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
        with self.tx.rpc("isAdminOrRole"):
            if contract.functions.isAdminOrRole(me, CONTRACT_BASE_ID, PERMISSION_BIT_ADMIN).call():
                return "admin"
            if contract.functions.isAdminOrRole(me, CONTRACT_BASE_ID, PERMISSION_BIT_MINTER).call():
                return "minter"
        return None

    # ---------------------------------------------------------------- helpers

    def _token_contract(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=CREATOR_1155_ABI)


# --------------------------------------------------------------- configuration


def _read_signer_key(cfg: ChainConfig, get_parameter: Callable[[str], str] | None) -> str:
    if cfg.signer_key is not None:
        return cfg.signer_key.get_secret_value()
    if cfg.signer_key_param:
        if get_parameter is None:
            from aws_lambda_powertools.utilities import parameters  # lazy: only the mint function pays

            def get_parameter(name: str) -> str:
                try:
                    return str(parameters.get_parameter(name, decrypt=True, max_age=900))
                except parameters.exceptions.GetParameterError:  # missing, AccessDenied, throttled
                    raise MintError(
                        f"The signer key parameter {name} cannot be read; nothing was minted",
                        param=name,
                        reason="config",
                    ) from None

        key = get_parameter(cfg.signer_key_param).strip()
        if not key:
            raise MintError(
                f"The signer key parameter {cfg.signer_key_param} is empty",
                param=cfg.signer_key_param,
                reason="config",
            )
        return key
    raise MintError(
        "No signer key: set IMAGEMINT_SIGNER_KEY_PARAM (or IMAGEMINT_SIGNER_KEY locally)", reason="config"
    )


def from_settings(
    settings: Settings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    get_parameter: Callable[[str], str] | None = None,
    nonces: NonceAllocator | None = None,
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
        raise MintError(
            "The signer key is not a valid private key", param=cfg.signer_key_param or None, reason="config"
        ) from None
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
        nonces=nonces,
        stuck_after_s=cfg.chain_stuck_after_s,
        gap_grace_s=cfg.chain_gap_grace_s,
    )
