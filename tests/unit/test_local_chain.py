"""The embedded chain (eth-tester + py-evm, chain id 8453) mints a real Zora moment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imagemint
from imagemint.adapters.chain.abi import CREATOR_1155_ABI
from imagemint_dev.embedded.chain import LocalChain


def test_embedded_chain_mints_a_moment():
    chain = LocalChain()
    minter = chain.minter()
    w3 = chain.w3
    assert w3.eth.chain_id == 8453
    assert w3.eth.call({"to": None, "data": "0x4660005260206000f3"}) == (8453).to_bytes(32, "big")  # CHAINID
    creator = "0x000000000000000000000000000000000000dEaD"
    address = minter.ensure_contract(creator, None, "Local creator")
    moment = minter.mint("ar://local-metadata", creator, address)
    token = w3.eth.contract(address=address, abi=CREATOR_1155_ABI)
    assert moment.chainId == 8453 and moment.tokenId == "1"
    assert token.functions.uri(1).call() == "ar://local-metadata"
    assert token.functions.balanceOf(creator, 1).call() == 1
    print(f"\n[local chain] start-up (stack deploy) {chain.startup_s * 1000:.0f} ms")


def test_importing_the_port_does_not_import_web3():
    code = "import sys, imagemint.domain.ports; sys.exit(1 if 'web3' in sys.modules else 0)"
    env = {**os.environ, "PYTHONPATH": str(Path(imagemint.__file__).resolve().parents[1])}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0
