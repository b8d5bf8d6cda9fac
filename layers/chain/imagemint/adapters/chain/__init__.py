"""Onchain moments through the Zora 1155 protocol (:mod:`.zora`; web3 is imported there only)."""
