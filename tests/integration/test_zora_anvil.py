"""ZoraMinter against the real Zora 1155 protocol deployed on anvil (chain id 8453)."""

from __future__ import annotations

import threading
import time

import pytest
from chain_fixtures import AnvilNode, anvil  # noqa: F401  (fixture)
from eth_account import Account
from web3 import Web3

from imagemint.adapters.chain.abi import CREATOR_1155_ABI, FACTORY_ABI, PERMISSION_BIT_ADMIN
from imagemint.adapters.chain.zora import ZoraMinter
from imagemint.domain.ports import Moment
from imagemint.errors import MintError
from imagemint_dev.embedded.zora_deploy import load_artifact, timed_deploy

pytestmark = pytest.mark.integration

FEES = {"max_fee_gwei": 50, "max_priority_fee_gwei": 1, "gas_limit_cap": 2_000_000}


@pytest.fixture(scope="module")
def stack(anvil: AnvilNode):  # noqa: F811
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 10}))
    deployer = Account.from_key(anvil.private_key)
    addresses, seconds = timed_deploy(w3, deployer)
    print(f"\n[zora] stack deployed on anvil in {seconds * 1000:.0f} ms")
    signer = Account.create()
    fund(w3, signer.address)
    return w3, addresses, deployer, signer


def fund(w3: Web3, address: str) -> None:
    w3.provider.make_request("anvil_setBalance", [address, hex(100 * 10**18)])


def make_minter(stack, **overrides) -> ZoraMinter:
    w3, addresses, _deployer, signer = stack
    options = {
        "factory_address": addresses.factory,
        "signer": signer,
        "chain_id": 8453,
        "poll_latency_s": 0.01,
        "receipt_timeout_s": 10,
        **FEES,
    }
    options.update(overrides)
    return ZoraMinter(w3, **options)


def token(w3: Web3, address: str):
    return w3.eth.contract(address=address, abi=CREATOR_1155_ABI)


def test_embedded_abi_matches_the_published_artifacts():
    def signatures(abi):
        def types(params):
            return tuple(
                (p["type"], tuple(c["type"] for c in p.get("components", ())), p.get("indexed"))
                for p in params
            )

        return {
            (x["type"], x["name"], types(x["inputs"]), types(x.get("outputs", ())))
            for x in abi
            if "name" in x
        }

    assert signatures(FACTORY_ABI) <= signatures(load_artifact("ZoraCreator1155FactoryImpl").abi)
    assert signatures(CREATOR_1155_ABI) <= signatures(load_artifact("ZoraCreator1155Impl").abi)


def test_the_deployed_stack_is_the_real_one(stack):
    w3, addresses, deployer, _signer = stack
    factory = w3.eth.contract(
        address=addresses.factory, abi=list(load_artifact("ZoraCreator1155FactoryImpl").abi)
    )
    assert factory.functions.owner().call() == deployer.address
    assert factory.functions.zora1155Impl().call() == addresses.creator_1155_impl
    assert len(w3.eth.get_code(addresses.creator_1155_impl)) > 24_576  # over EIP-170


def test_ensure_contract_creates_once_and_the_creator_owns_it(stack):
    w3 = stack[0]
    minter = make_minter(stack)
    creator = Account.create().address
    address = minter.ensure_contract(creator, None, "Creator one")
    assert minter.ensure_contract(creator, None, "Creator one") == address  # no second contract
    assert minter.ensure_contract(creator, address.lower(), "ignored") == address
    contract = token(w3, address)
    assert contract.functions.isAdminOrRole(creator, 0, PERMISSION_BIT_ADMIN).call()
    assert contract.functions.isAdminOrRole(minter.signer.address, 0, PERMISSION_BIT_ADMIN).call()
    with pytest.raises(MintError) as info:
        minter.ensure_contract(creator, Account.create().address, "x")
    assert info.value.details["reason"] == "no_contract"


def test_mint_two_moments(stack):
    w3 = stack[0]
    minter = make_minter(stack)
    creator = Account.create().address
    address = minter.ensure_contract(creator, None, "Two moments")
    contract = token(w3, address)
    moments = []
    for n in (1, 2):
        uri = f"ar://metadata-{n}-{creator}"
        moment = minter.mint(uri, creator, address)
        assert isinstance(moment, Moment)
        assert moment.contractAddress == address and moment.chainId == 8453
        assert contract.functions.uri(int(moment.tokenId)).call() == uri
        assert contract.functions.balanceOf(creator, int(moment.tokenId)).call() == 1
        assert w3.eth.get_transaction_receipt(moment.hash)["status"] == 1
        moments.append(moment)
    # Ids come from the SetupNewToken events; a fresh Zora contract starts at 1.
    assert [m.tokenId for m in moments] == ["1", "2"]


def test_refuses_a_node_on_another_chain(stack):
    w3, _addresses, _deployer, signer = stack
    minter = make_minter(stack, chain_id=84532)  # allowed id, but the node says 8453
    nonce = w3.eth.get_transaction_count(signer.address)
    with pytest.raises(MintError) as info:
        minter.ensure_contract(Account.create().address, None, "wrong chain")
    assert info.value.details["reason"] == "chain_id_mismatch"
    assert info.value.code == "mint_failed" and info.value.status == 502
    assert w3.eth.get_transaction_count(signer.address) == nonce  # nothing was signed or sent
    with pytest.raises(MintError) as info:
        make_minter(stack, chain_id=1)
    assert info.value.details["reason"] == "chain_id_not_allowed"


def test_refuses_when_the_base_fee_is_above_the_cap(stack):
    w3, _addresses, _deployer, signer = stack
    creator = Account.create().address
    address = make_minter(stack).ensure_contract(creator, None, "fee cap")
    capped = make_minter(stack, max_fee_gwei="0.000000001")  # 1 wei
    nonce = w3.eth.get_transaction_count(signer.address)
    with pytest.raises(MintError) as info:
        capped.mint("ar://too-expensive", creator, address)
    assert info.value.details["reason"] == "base_fee_above_cap"
    assert w3.eth.get_transaction_count(signer.address) == nonce


def test_refuses_when_the_gas_estimate_is_above_the_cap(stack):
    creator = Account.create().address
    address = make_minter(stack).ensure_contract(creator, None, "gas cap")
    with pytest.raises(MintError) as info:
        make_minter(stack, gas_limit_cap=60_000).mint("ar://too-much-gas", creator, address)
    assert info.value.details["reason"] == "gas_above_cap"


def test_refuses_a_contract_where_the_signer_has_no_role(stack):
    w3 = stack[0]
    other = Account.create()
    fund(w3, other.address)
    creator = Account.create().address
    address = make_minter(stack, signer=other).ensure_contract(creator, None, "not ours")
    with pytest.raises(MintError) as info:
        make_minter(stack).mint("ar://nope", creator, address)
    assert info.value.details["reason"] == "not_authorized"


def test_five_concurrent_mints_all_succeed_with_distinct_nonces(stack):
    w3 = stack[0]
    creator = Account.create().address
    address = make_minter(stack).ensure_contract(creator, None, "concurrent")
    results: list[Moment] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def worker(n: int) -> None:
        minter = make_minter(stack)  # separate instances share the process-wide signer lock
        barrier.wait()
        try:
            results.append(minter.mint(f"ar://concurrent-{n}", creator, address))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 5
    nonces = {w3.eth.get_transaction(m.hash)["nonce"] for m in results}
    assert len(nonces) == 5
    assert sorted(int(m.tokenId) for m in results) == [1, 2, 3, 4, 5]
    contract = token(w3, address)
    for m in results:
        assert contract.functions.balanceOf(creator, int(m.tokenId)).call() == 1


class RacingProvider(Web3.HTTPProvider):
    """The node as the minter sees it, with another writer getting in just before the first gas estimate."""

    def __init__(self, endpoint_uri: str, before_first_estimate) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": 10})
        self.before_first_estimate = before_first_estimate
        self.estimates = 0

    def make_request(self, method, params):
        if method == "eth_estimateGas":
            self.estimates += 1
            if self.estimates == 1:
                self.before_first_estimate()
        return super().make_request(method, params)


def test_a_token_id_taken_by_another_writer_is_retried(stack, anvil):  # noqa: F811
    w3 = stack[0]
    creator = Account.create().address
    address = make_minter(stack).ensure_contract(creator, None, "race")
    intruder = make_minter(stack, batch=False)  # same signer: takes the next id in between
    provider = RacingProvider(anvil.rpc_url, lambda: intruder.mint("ar://intruder", creator, address))
    minter = make_minter((Web3(provider), *stack[1:]))
    moment = minter.mint("ar://after-race", creator, address)
    assert provider.estimates == 2  # first multicall refused by assumeLastTokenIdMatches, then retried
    assert moment.tokenId == "2"
    assert token(w3, address).functions.uri(2).call() == "ar://after-race"


def test_gas_per_moment_batched_vs_separate(stack):
    creator = Account.create().address
    batched_minter = make_minter(stack)
    separate_minter = make_minter(stack, batch=False)
    address = batched_minter.ensure_contract(creator, None, "gas")
    uri = "ar://" + "x" * 43  # an Arweave URI's length
    batched = [batched_minter.mint_detailed(uri, creator, address) for _ in range(3)]
    separate = [separate_minter.mint_detailed(uri, creator, address) for _ in range(3)]
    assert all(o.batched and len(o.tx_hashes) == 1 for o in batched)
    assert all(not o.batched and len(o.tx_hashes) == 2 for o in separate)
    b = sum(o.gas_used for o in batched) / 3
    s = sum(o.gas_used for o in separate) / 3
    started = time.perf_counter()
    batched_minter.mint(uri, creator, address)
    mint_ms = (time.perf_counter() - started) * 1000
    print(
        f"\n[zora] gas per moment: batched multicall {b:.0f}, separate setupNewToken + adminMint {s:.0f} "
        f"({(s - b) / s:.0%} saved); one batched mint on anvil {mint_ms:.0f} ms"
    )
    assert b < s


def test_from_settings_builds_an_rpc_minter(stack, anvil):  # noqa: F811
    from imagemint.adapters.chain.zora import from_settings
    from imagemint.settings import Settings

    _w3, addresses, _deployer, signer = stack
    settings = Settings(jobs_table="jobs", accounts_table="accounts", bucket="bucket", chain_mode="rpc")
    environ = {
        "IMAGEMINT_CHAIN_RPC_URL": anvil.rpc_url,
        "IMAGEMINT_ZORA_FACTORY_ADDRESS": addresses.factory,
        "IMAGEMINT_SIGNER_KEY_PARAM": "/imagemint/signer-key",
        "IMAGEMINT_CHAIN_MAX_FEE_GWEI": "50",
    }
    asked: list[str] = []

    def get_parameter(name: str) -> str:  # stands in for Powertools Parameters (SSM)
        asked.append(name)
        return signer.key.hex()

    minter = from_settings(settings, environ=environ, get_parameter=get_parameter)
    assert asked == ["/imagemint/signer-key"]
    assert isinstance(minter, ZoraMinter) and minter.signer.address == signer.address
    creator = Account.create().address
    address = minter.ensure_contract(creator, None, "from settings")
    assert minter.mint("ar://configured", creator, address).tokenId == "1"

    off = Settings(jobs_table="jobs", accounts_table="accounts", bucket="bucket", chain_mode="off")
    assert from_settings(off) is None
    with pytest.raises(MintError) as info:
        from_settings(settings, environ={"IMAGEMINT_CHAIN_RPC_URL": anvil.rpc_url})
    assert info.value.details["reason"] == "config"
