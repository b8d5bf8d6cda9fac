"""The embedded default chain: an in-process EVM with the real Zora stack on it.

``chain_mode=local`` (``imagemint serve``, unit tests) mints on this chain:
eth-tester + py-evm inside the process, no node to run. It reports chain id
8453 like Base: the py-evm chain's id (used by the ``CHAINID`` opcode and
transaction validation) and web3's ``eth_chainId`` answer are both set. The
Zora 1155 impl's runtime code (~40 KB) is over the EIP-170 limit of 24 KB, so
the VM used here is py-evm's default fork with its contract-code-size check
turned off (a subclass of the fork's computation class; py-evm itself is not
patched). The initcode limit (EIP-3860, 48 KB) still holds and the impl's
~41 KB creation code fits under it.

Start-up (imports excluded) is the Zora stack deployment, ~0.3 s on the
development machines; the web3 + eth-tester + py-evm import adds ~1.2 s.
State lives in memory and is lost when the process exits.

eth-tester is not thread-safe, so the provider serialises requests with a
lock; the minter's own signer lock already serialises transactions.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from imagemint.adapters.chain.zora import ZoraMinter
from imagemint_dev.embedded.zora_deploy import ZoraAddresses, deploy_zora_stack

DEFAULT_CHAIN_ID = 8453


def _unlimited_code_size_vm() -> type:
    """py-evm's current fork VM with EIP-170 (max runtime code size) lifted."""
    from eth.vm.forks.prague import PragueVM
    from eth.vm.forks.prague.computation import PragueComputation
    from eth.vm.forks.prague.state import PragueState

    class UnlimitedCodeComputation(PragueComputation):
        @classmethod
        def validate_contract_code(cls, contract_code: bytes) -> None:
            return None

    class UnlimitedCodeState(PragueState):
        computation_class = UnlimitedCodeComputation

    class UnlimitedCodeVM(PragueVM):
        _state_class = UnlimitedCodeState

    return UnlimitedCodeVM


class _LockedTesterProvider(EthereumTesterProvider):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._request_lock:
            return super().make_request(method, params)


class LocalChain:
    """An in-process chain with the Zora 1155 stack deployed at :meth:`start`."""

    def __init__(
        self, chain_id: int = DEFAULT_CHAIN_ID, *, zora_artifacts_dir: str | os.PathLike[str] | None = None
    ):
        self.chain_id = chain_id
        self.zora_artifacts_dir = zora_artifacts_dir
        self.w3: Web3 | None = None
        self.addresses: ZoraAddresses | None = None
        self.deployer: LocalAccount | None = None
        self.signer: LocalAccount | None = None
        self.startup_s: float | None = None  # chain creation + stack deployment
        self._lock = threading.Lock()

    def start(self) -> tuple[Web3, ZoraAddresses, LocalAccount]:
        """Create the chain and deploy the stack (once); return (w3, addresses, funded signer)."""
        with self._lock:
            if self.w3 is None:
                self._start()
            assert self.w3 is not None and self.addresses is not None and self.signer is not None
            return self.w3, self.addresses, self.signer

    def _start(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3.providers.eth_tester.defaults import API_ENDPOINTS

        started = time.perf_counter()
        backend = PyEVMBackend(vm_configuration=((0, _unlimited_code_size_vm()),))
        backend.chain.chain_id = self.chain_id  # the VM's CHAINID and tx validation
        endpoints = {namespace: dict(methods) for namespace, methods in API_ENDPOINTS.items()}
        chain_id = self.chain_id
        endpoints["eth"]["chainId"] = lambda *_args, **_kwargs: chain_id  # web3's eth_chainId
        w3 = Web3(_LockedTesterProvider(EthereumTester(backend), api_endpoints=endpoints))

        # eth-tester's genesis accounts hold 1,000,000 ETH each.
        keys = backend.account_keys
        deployer = Account.from_key(keys[0].to_bytes())
        signer = Account.from_key(keys[1].to_bytes())
        addresses = deploy_zora_stack(w3, deployer, zora_artifacts_dir=self.zora_artifacts_dir)
        self.startup_s = time.perf_counter() - started
        self.w3, self.addresses, self.deployer, self.signer = w3, addresses, deployer, signer

    def minter(self, **overrides: Any) -> ZoraMinter:
        w3, addresses, signer = self.start()
        options: dict[str, Any] = {
            "factory_address": addresses.factory,
            "signer": signer,
            "chain_id": self.chain_id,
            "local_chain_id": self.chain_id,
            "max_fee_gwei": 100,
            "max_priority_fee_gwei": 1,
            "gas_limit_cap": 5_000_000,
            "receipt_timeout_s": 10.0,
            "poll_latency_s": 0.01,
        }
        options.update(overrides)
        return ZoraMinter(w3, **options)


_DEFAULT: LocalChain | None = None
_DEFAULT_GUARD = threading.Lock()


def default_local_chain() -> LocalChain:
    """The process-wide embedded chain (started on first use)."""
    global _DEFAULT
    with _DEFAULT_GUARD:
        if _DEFAULT is None:
            _DEFAULT = LocalChain()
        return _DEFAULT


def make_local_minter(chain: LocalChain | None = None, **overrides: Any) -> ZoraMinter:
    """A :class:`ZoraMinter` on the embedded chain (the process-wide one by default)."""
    return (chain or default_local_chain()).minter(**overrides)
