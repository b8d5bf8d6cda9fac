"""Deploy the real Zora 1155 protocol stack from its published build artifacts.

The artifacts are the Foundry ``out/`` folder shipped in the npm package
``@zoralabs/zora-1155-contracts`` (ABI + creation bytecode per contract). The
stack deployed here is what a creator contract needs to work as on Base:

1. ``ProtocolRewards``                         (mint-fee rewards)
2. ``UpgradeGate`` + ``initialize(owner)``
3. ``DelegatedTokenCreation`` library          (linked into the 1155 impl)
4. ``ZoraCreator1155Impl(mintFeeRecipient, upgradeGate, protocolRewards, 0)``
5. ``ZoraCreatorFixedPriceSaleStrategy``, ``ZoraCreatorMerkleMinterStrategy``,
   ``ZoraCreatorRedeemMinterFactory``           (factory impl constructor args)
6. ``ZoraCreator1155FactoryImpl(impl, merkle, fixedPrice, redeem)``
7. ``Zora1155Factory`` proxy (ERC-1967) whose constructor calls
   ``initialize(owner)`` on the factory impl in the same transaction, so
   nobody can initialize it in between.

The 1155 impl is ~40 KB of runtime code, over the EIP-170 limit: the chain
must lift it (anvil ``--disable-code-size-limit``; the embedded chain in
:mod:`imagemint_dev.embedded.chain` patches py-evm's check).

Artifacts are read from ``zora_artifacts_dir``, else the folder named by the
environment variable ``IMAGEMINT_ZORA_ARTIFACTS`` (a Foundry ``out/`` folder),
else :data:`PACKAGED_ARTIFACTS`: the nine files of :data:`SOURCES`, copied byte
for byte from the pinned npm package into this package by
:mod:`imagemint_dev.embedded.extract_zora_artifacts` (so the embedded chain
needs no npm install).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.utils.address import get_create_address

ARTIFACTS_ENV = "IMAGEMINT_ZORA_ARTIFACTS"
#: the artifacts shipped with this package (same layout as Foundry's ``out/``)
PACKAGED_ARTIFACTS = Path(__file__).resolve().with_name("zora_artifacts")

#: contract name -> the Solidity source file (folder under ``out/``) it is built from.
SOURCES: dict[str, str] = {
    "ProtocolRewards": "ProtocolRewards.sol",
    "UpgradeGate": "UpgradeGate.sol",
    "DelegatedTokenCreation": "ZoraCreator1155Attribution.sol",
    "ZoraCreator1155Impl": "ZoraCreator1155Impl.sol",
    "ZoraCreatorFixedPriceSaleStrategy": "ZoraCreatorFixedPriceSaleStrategy.sol",
    "ZoraCreatorMerkleMinterStrategy": "ZoraCreatorMerkleMinterStrategy.sol",
    "ZoraCreatorRedeemMinterFactory": "ZoraCreatorRedeemMinterFactory.sol",
    "ZoraCreator1155FactoryImpl": "ZoraCreator1155FactoryImpl.sol",
    "Zora1155Factory": "Zora1155Factory.sol",
}

_ZERO = "0x0000000000000000000000000000000000000000"
_MAX_DEPLOY_GAS = 16_000_000  # under the per-tx cap of recent forks (2**24)


class DeployError(RuntimeError):
    """The stack could not be deployed (missing artifacts, a reverted deployment)."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str  # creation bytecode, hex without 0x; may hold library placeholders
    link_references: dict[str, dict[str, list[dict[str, int]]]]

    def linked(self, libraries: dict[str, str]) -> str:
        """The creation bytecode (0x-hex) with every library placeholder replaced."""
        code = self.bytecode
        for _source, libs in self.link_references.items():
            for lib_name, spots in libs.items():
                if lib_name not in libraries:
                    raise DeployError(f"{self.name} needs library {lib_name}, which was not given")
                address = Web3.to_checksum_address(libraries[lib_name])[2:].lower()
                for spot in spots:
                    start, length = spot["start"] * 2, spot["length"] * 2
                    if length != len(address):
                        raise DeployError(f"unexpected link length {spot['length']} in {self.name}")
                    code = code[:start] + address + code[start + length :]
        if "__$" in code:
            raise DeployError(f"{self.name} still has unlinked library placeholders")
        return "0x" + code


@dataclass(frozen=True)
class ZoraAddresses:
    """Where each part of the stack was deployed (checksummed addresses)."""

    protocol_rewards: str
    upgrade_gate: str
    delegated_token_creation: str
    creator_1155_impl: str
    fixed_price_minter: str
    merkle_minter: str
    redeem_minter_factory: str
    factory_impl: str
    factory: str  # the proxy: the address every caller uses

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def default_artifacts_dir() -> Path:
    """``IMAGEMINT_ZORA_ARTIFACTS`` if set, else :data:`PACKAGED_ARTIFACTS` (see module doc)."""
    configured = os.environ.get(ARTIFACTS_ENV)
    return Path(configured) if configured else PACKAGED_ARTIFACTS


def _resolve_dir(zora_artifacts_dir: str | os.PathLike[str] | None) -> str:
    folder = Path(zora_artifacts_dir) if zora_artifacts_dir is not None else default_artifacts_dir()
    return str(folder.resolve())


@lru_cache(maxsize=64)
def _load_artifact(folder: str, name: str) -> Artifact:
    path = Path(folder, SOURCES.get(name, f"{name}.sol"), f"{name}.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(
            f"missing Zora artifact {name} ({path.name}) in {folder}: unset {ARTIFACTS_ENV}, or restore the "
            "packaged copy with `python -m imagemint_dev.embedded.extract_zora_artifacts`"
        ) from None
    bytecode = raw["bytecode"]
    code = bytecode["object"]
    return Artifact(
        name=name,
        abi=tuple(raw["abi"]),
        bytecode=code[2:] if code.startswith("0x") else code,
        link_references=bytecode.get("linkReferences") or {},
    )


def load_artifact(name: str, zora_artifacts_dir: str | os.PathLike[str] | None = None) -> Artifact:
    """One contract's artifact (cached per folder and name)."""
    return _load_artifact(_resolve_dir(zora_artifacts_dir), name)


class _Deployer:
    """Sends signed deployment transactions one after the other from one account."""

    def __init__(self, w3: Web3, account: LocalAccount, gas_limit: int | None, priority_fee_wei: int):
        self.w3 = w3
        self.account = account
        self.chain_id = w3.eth.chain_id
        self.nonce = w3.eth.get_transaction_count(account.address, "pending")
        latest = w3.eth.get_block("latest")
        self.gas_limit = gas_limit or min(int(latest["gasLimit"]), _MAX_DEPLOY_GAS)
        self.priority_fee = priority_fee_wei
        self.gas_used = 0

    def _fees(self) -> dict[str, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
        return {"maxFeePerGas": 2 * base + self.priority_fee, "maxPriorityFeePerGas": self.priority_fee}

    def send(self, to: str | None, data: str, label: str) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "data": data,
            "value": 0,
            "gas": self.gas_limit,
            "type": 2,
            **self._fees(),
        }
        if to is not None:
            tx["to"] = to
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.05)
        if receipt["status"] != 1:
            raise DeployError(f"{label} reverted (tx {tx_hash.to_0x_hex()})")
        self.gas_used += int(receipt["gasUsed"])
        return dict(receipt)

    def deploy(self, artifact: Artifact, args: tuple[Any, ...] = (), libraries: dict[str, str] | None = None):
        bytecode = artifact.linked(libraries or {})
        factory = self.w3.eth.contract(abi=list(artifact.abi), bytecode=bytecode)
        data = factory.constructor(*args).data_in_transaction
        expected = get_create_address(self.account.address, self.nonce)
        receipt = self.send(None, data, artifact.name)
        address = receipt.get("contractAddress") or expected
        if Web3.to_checksum_address(address) != expected:
            raise DeployError(f"{artifact.name} landed at {address}, expected {expected}")
        return self.w3.eth.contract(address=expected, abi=list(artifact.abi))


def deploy_zora_stack(
    w3: Web3,
    deployer: LocalAccount,
    *,
    owner: str | None = None,
    mint_fee_recipient: str | None = None,
    zora_artifacts_dir: str | os.PathLike[str] | None = None,
    gas_limit: int | None = None,
    priority_fee_wei: int = 1_000_000_000,
) -> ZoraAddresses:
    """Deploy the Zora 1155 stack with ``deployer``; return the addresses.

    ``owner`` (default: the deployer) owns the upgrade gate and the factory;
    ``mint_fee_recipient`` (default: the owner) receives protocol mint fees.
    Each deployment is one signed EIP-1559 transaction, awaited before the
    next; any revert raises :class:`DeployError`.
    """
    folder = _resolve_dir(zora_artifacts_dir)

    def art(name: str) -> Artifact:
        return _load_artifact(folder, name)

    owner = Web3.to_checksum_address(owner or deployer.address)
    fee_recipient = Web3.to_checksum_address(mint_fee_recipient or owner)
    d = _Deployer(w3, deployer, gas_limit, priority_fee_wei)

    rewards = d.deploy(art("ProtocolRewards"))
    gate = d.deploy(art("UpgradeGate"))
    d.send(gate.address, gate.encode_abi("initialize", args=[owner]), "UpgradeGate.initialize")
    library = d.deploy(art("DelegatedTokenCreation"))
    impl = d.deploy(
        art("ZoraCreator1155Impl"),
        (fee_recipient, gate.address, rewards.address, _ZERO),
        libraries={"DelegatedTokenCreation": library.address},
    )
    fixed_price = d.deploy(art("ZoraCreatorFixedPriceSaleStrategy"))
    merkle = d.deploy(art("ZoraCreatorMerkleMinterStrategy"))
    redeem = d.deploy(art("ZoraCreatorRedeemMinterFactory"))
    factory_impl = d.deploy(
        art("ZoraCreator1155FactoryImpl"),
        (impl.address, merkle.address, fixed_price.address, redeem.address),
    )
    init_data = factory_impl.encode_abi("initialize", args=[owner])
    proxy = d.deploy(art("Zora1155Factory"), (factory_impl.address, init_data))

    return ZoraAddresses(
        protocol_rewards=rewards.address,
        upgrade_gate=gate.address,
        delegated_token_creation=library.address,
        creator_1155_impl=impl.address,
        fixed_price_minter=fixed_price.address,
        merkle_minter=merkle.address,
        redeem_minter_factory=redeem.address,
        factory_impl=factory_impl.address,
        factory=proxy.address,
    )


def timed_deploy(w3: Web3, deployer: LocalAccount, **kwargs: Any) -> tuple[ZoraAddresses, float]:
    """:func:`deploy_zora_stack` and the seconds it took."""
    started = time.perf_counter()
    addresses = deploy_zora_stack(w3, deployer, **kwargs)
    return addresses, time.perf_counter() - started
