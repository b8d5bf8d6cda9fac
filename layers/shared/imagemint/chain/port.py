"""The minting port: what the pipeline needs from a chain, without web3.

Importing this module must stay cheap (no web3, no eth_* packages): the API
functions and the pipeline import :class:`Moment` and :class:`MintError`
without paying web3's ~1 s import. The implementation
(:mod:`imagemint.chain.zora`) is imported only by the mint step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from imagemint.errors import ImagemintError, _register

#: Chains a minter may sign for besides a configured local development chain.
BASE_MAINNET = 8453
BASE_SEPOLIA = 84532
PUBLIC_CHAIN_IDS: frozenset[int] = frozenset({BASE_MAINNET, BASE_SEPOLIA})


class Moment(BaseModel):
    """One minted moment: an ERC-1155 token on the creator's Zora contract.

    ``tokenId`` is a decimal string (token ids are uint256; JSON numbers lose
    precision above 2**53). ``hash`` is the transaction that minted the
    token to the creator (the batched multicall, or the ``adminMint`` tx when
    the token was set up in a separate transaction).
    """

    model_config = ConfigDict(frozen=True)

    contractAddress: str
    tokenId: str
    hash: str
    chainId: int


class MintError(ImagemintError):
    """Minting failed (node unreachable, refused by a guard, reverted, timed out).

    ``details["reason"]`` says which: ``chain_id_not_allowed``,
    ``chain_id_mismatch``, ``base_fee_above_cap``, ``gas_above_cap``,
    ``not_authorized``, ``reverted``, ``token_id_mismatch``, ``contract_mismatch``,
    ``timeout``,
    ``rpc_error``, ``bad_address``, ``no_contract``, ``config``.
    """

    code: ClassVar[str] = "mint_failed"
    status: ClassVar[int] = 502


# errors.from_dict() rebuilds errors by code from job records; make it know ours.
_register(MintError)


@runtime_checkable
class MomentMinter(Protocol):
    def ensure_contract(self, creator: str, contract_address: str | None, name: str) -> str:
        """The creator's 1155 contract address.

        Returns ``contract_address`` (checksummed, after checking it has code)
        when one is given; otherwise creates the creator's contract through
        the Zora factory, once: calling it again for the same creator and
        name returns the same contract.
        """
        ...

    def mint(
        self,
        metadata_uri: str,
        creator: str,
        contract_address: str,
        *,
        journal: Callable[[dict[str, Any]], None] | None = None,
    ) -> Moment:
        """Set up a new token with ``metadata_uri`` and mint one to ``creator``.

        ``journal`` gets a JSON-ready pending-mint record after each
        transaction is signed and before it is sent; keep the last one, and
        pass it to :meth:`resume` when the mint is run again after a crash.
        """
        ...

    def resume(
        self, pending: dict[str, Any], *, journal: Callable[[dict[str, Any]], None] | None = None
    ) -> Moment | None:
        """Finish the mint a killed run left in ``pending`` (the last journal record).

        The moment of the journalled transaction once it is mined (it is sent
        again, same nonce, when the node does not have it), or None when it was
        never mined and never can be (its nonce was taken, or it reverted):
        nothing was minted, mint afresh. Raises :class:`MintError` when it
        cannot be settled now (keep the record and try again later).
        """
        ...
