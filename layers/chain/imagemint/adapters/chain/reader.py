"""The :class:`~imagemint.domain.ports.ChainReader`: a moment read back from its Zora 1155 contract.

Two view calls, no signer: ``uri(tokenId)`` (the metadata the token points at)
and ``balanceOf(owner, tokenId)``. The verify path uses it (``GET /api/verify``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_utils import keccak
from web3 import Web3

from imagemint.adapters.chain.abi import CREATOR_1155_ABI
from imagemint.adapters.chain.txengine import checksum_address

#: ERC-1155 TransferSingle(operator, from, to, id, value): topics[3] is ``to``, data is (id, value).
TRANSFER_SINGLE = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()

if TYPE_CHECKING:
    from imagemint.settings import Settings


class Web3ChainReader:
    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    @classmethod
    def from_settings(cls, settings: Settings) -> Web3ChainReader:
        from imagemint.adapters.chain.zora import ChainConfig

        cfg = ChainConfig.from_env(None, settings)
        return cls(Web3(Web3.HTTPProvider(cfg.chain_rpc_url, request_kwargs={"timeout": 10})))

    def _contract(self, address: str) -> Any:
        return self.w3.eth.contract(address=checksum_address(address, "contract"), abi=CREATOR_1155_ABI)

    def token_uri(self, contract: str, token_id: int) -> str:
        return str(self._contract(contract).functions.uri(int(token_id)).call())

    def balance_of(self, contract: str, owner: str, token_id: int) -> int:
        return int(
            self._contract(contract)
            .functions.balanceOf(checksum_address(owner, "owner"), int(token_id))
            .call()
        )

    def minted_to(self, tx_hash: str, token_id: int) -> str | None:
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        for log in receipt["logs"]:
            topics = [t.hex() if isinstance(t, bytes | bytearray) else str(t) for t in log["topics"]]
            topics = [t if t.startswith("0x") else "0x" + t for t in topics]
            if len(topics) != 4 or topics[0].lower() != TRANSFER_SINGLE:
                continue
            data = bytes(log["data"])
            if len(data) >= 64 and int.from_bytes(data[:32], "big") == int(token_id):
                return Web3.to_checksum_address("0x" + topics[3][-40:])
        return None
