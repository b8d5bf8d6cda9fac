"""Onchain moments through the Zora 1155 protocol: :mod:`.zora` (the protocol), :mod:`.txengine`
(signing, nonces, fees, receipts), :mod:`.abi` (ABI fragments and addresses). web3 is imported there only."""
