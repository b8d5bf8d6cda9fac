"""The Zora 1155 protocol as data: the ABI fragments the minter calls, addresses and constants.

Only the functions and events :mod:`.zora` uses are written here; the
integration tests check them against the published Zora artifacts.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

#: The ZoraCreator1155Factory proxy on Base and Base Sepolia (same address on both).
ZORA_FACTORY_ADDRESSES: dict[int, str] = {
    8453: "0x777777C338d93e2C7adf08D102d45CA7CC4Ed021",
    84532: "0x777777C338d93e2C7adf08D102d45CA7CC4Ed021",
}

#: Token id 0 carries the contract-wide permissions.
CONTRACT_BASE_ID = 0
PERMISSION_BIT_ADMIN = 2**1
PERMISSION_BIT_MINTER = 2**2
#: Zora's "open edition" supply (uint64 max), what In Process moments use.
OPEN_EDITION_SUPPLY = 2**64 - 1

#: Selector of the ``TokenIdMismatch(uint256,uint256)`` error ``assumeLastTokenIdMatches`` reverts with.
TOKEN_ID_MISMATCH = "0x" + keccak(text="TokenIdMismatch(uint256,uint256)")[:4].hex()


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
