"""Onchain moments: minting through the Zora 1155 protocol.

Only this package imports web3, and only in :mod:`imagemint.chain.zora`,
:mod:`imagemint.chain.deploy` and :mod:`imagemint.chain.local_chain`.
This ``__init__`` and :mod:`imagemint.chain.port` stay web3-free.
"""

from imagemint.chain.port import MintError, Moment, MomentMinter

__all__ = ["MintError", "Moment", "MomentMinter"]
