"""The embedded default: what ``imagemint serve`` archives and mints on, with nothing else running.

* :mod:`.arweave_store` — real signed Arweave items kept in the image store
  (served by the local runtime's gateway route).
* :mod:`.chain` — an in-process EVM (eth-tester + py-evm) with the real Zora
  1155 stack deployed from the build artifacts packaged in ``zora_artifacts/``
  (copied byte for byte from the pinned npm package by
  ``python -m imagemint_dev.embedded.extract_zora_artifacts``; no npm needed to serve).

None of this is deployed: :func:`install` hands the builders to
:func:`imagemint.wiring.override`, and ``archive_mode`` / ``chain_mode``
``embedded`` then use them.
"""

from __future__ import annotations

from typing import Any


def _archive_store(deps: Any) -> Any:
    from imagemint.wiring import _wallet
    from imagemint_dev.embedded.arweave_store import LocalSignedStore

    s = deps.settings
    return LocalSignedStore(deps.images, _wallet(s), s.arweave_gateway_url or s.public_base_url)


def _minter(settings: Any) -> Any:
    from imagemint.errors import MintError
    from imagemint_dev.embedded.chain import make_local_minter
    from imagemint_dev.embedded.zora_deploy import DeployError

    try:
        return make_local_minter()
    except DeployError as exc:
        raise MintError(f"The embedded chain could not start: {exc}", reason="config") from None


def install() -> None:
    """Make ``archive_mode=embedded`` and ``chain_mode=embedded`` work in this process."""
    from imagemint import wiring

    wiring.override(embedded_archive_store=_archive_store, embedded_minter=_minter)
