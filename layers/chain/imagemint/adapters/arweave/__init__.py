"""Permanent storage on Arweave.

Modules (import the one you need; none imports web3 or openai, and only
:mod:`~imagemint.adapters.arweave.gateway_store` imports arweave-python-client, lazily):

* :mod:`~imagemint.adapters.arweave.wallet`: RSA-4096 JWK wallets (generate, load, address; AWS Parameters).
* :mod:`~imagemint.adapters.arweave.tx`: format-2 transactions: data_root/chunks, deep hash, sign, verify.
* :mod:`~imagemint.adapters.arweave.store`: the ``ArchiveStore`` port, ``ArchiveRecord``, ``ArchiveError``.
* :mod:`~imagemint.adapters.arweave.gateway_store`: ``GatewayArchiveStore`` (ArLocal, arweave.net).
"""
