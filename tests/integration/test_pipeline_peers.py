"""The whole pipeline against real peers: ArLocal (Arweave gateway) and anvil with the real Zora 1155
contracts, driven through the local runtime by configuration alone (``archive_mode=arweave``,
``chain_mode=rpc``). Prints per-image pipeline times (not asserted: see tests/bench)."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path

import pytest
from arweave_fixtures import http_get, mine, mint

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def peers_runtime(arlocal, anvil, tmp_path_factory):
    from eth_account import Account
    from web3 import Web3

    from imagemint_dev.embedded.zora_deploy import deploy_zora_stack

    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    deployer = Account.from_key(anvil.private_key)
    addresses = deploy_zora_stack(w3, deployer)
    env = {
        "IMAGEMINT_ARCHIVE_MODE": "arweave",
        "IMAGEMINT_ARWEAVE_GATEWAY_URL": arlocal,
        "IMAGEMINT_CHAIN_MODE": "rpc",
        "IMAGEMINT_CHAIN_RPC_URL": anvil.rpc_url,
        "IMAGEMINT_CHAIN_ID": str(anvil.chain_id),
        "IMAGEMINT_ZORA_FACTORY_ADDRESS": addresses.factory,
        "IMAGEMINT_SIGNER_KEY": anvil.private_key,
        "IMAGEMINT_CHAIN_MAX_FEE_GWEI": "100",
    }
    state = tmp_path_factory.mktemp("peers")
    rt = start(root=ROOT, state_dir=state, port=0, extra_env=env)
    from imagemint.adapters.arweave.wallet import load_wallet, wallet_address

    mint(arlocal, wallet_address(load_wallet(str(state / "arweave-wallet.json"))), 10**15)
    yield rt, w3, arlocal
    rt.stop()


def legacy(rt, prompt):
    url = f"{rt.base_url}/api/image/generate?prompt={prompt}&account_id={rt.account['account_id']}"
    with urllib.request.urlopen(url, timeout=120) as r:  # our own 127.0.0.1 runtime
        return json.loads(r.read())


def test_legacy_pipeline_on_arlocal_and_anvil(peers_runtime):
    import base64

    from imagemint.adapters.chain.abi import CREATOR_1155_ABI

    rt, w3, arlocal = peers_runtime
    res = legacy(rt, "peers")
    assert res["moment"] and res["arweaveResult"], res["warnings"]
    tx_id = res["arweaveResult"]["id"]
    assert res["imageUrl"] == f"{arlocal}/{tx_id}"
    mine(arlocal)
    status, ctype, data = http_get(arlocal, f"/{tx_id}")
    assert status == 200 and ctype.startswith("image/png")
    assert data == base64.b64decode(res["images"][0]["base64"])
    moment = res["moment"]
    token = w3.eth.contract(address=moment["contractAddress"], abi=CREATOR_1155_ABI)
    uri = token.functions.uri(int(moment["tokenId"])).call()
    status, _, meta = http_get(arlocal, "/" + uri.removeprefix("ar://"))
    assert status == 200 and json.loads(meta)["image"] == f"ar://{tx_id}"


def test_pipeline_times(peers_runtime):
    rt, _, _ = peers_runtime
    times = []
    for i in range(20):
        t0 = time.perf_counter()
        res = legacy(rt, f"timing{i}")
        times.append(time.perf_counter() - t0)
        assert res["moment"], res["warnings"]
    body = json.dumps(
        {"prompt": "four", "model": "gpt-image-2", "n": 4, "archive": True, "mint": True}
    ).encode()
    req = urllib.request.Request(
        f"{rt.base_url}/v1/images/generations",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {rt.account['api_key']}"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    n4 = time.perf_counter() - t0
    assert len(out["data"]) == 4 and not any("failed" in w for w in out["warnings"]), out["warnings"]
    print(
        f"\npipeline per image (legacy, ArLocal + anvil): p50 {statistics.median(times):.3f} s, "
        f"max {max(times):.3f} s over 20; n=4 with archive+mint: {n4:.3f} s"
    )
