"""Permanent storage on Arweave.

Modules (import the one you need; none imports web3 or openai, and only
:mod:`~imagemint.arweave.gateway_store` imports arweave-python-client, lazily):

* :mod:`~imagemint.arweave.wallet`: RSA-4096 JWK wallets (generate, load, address; AWS Parameters).
* :mod:`~imagemint.arweave.tx`: format-2 transactions: data_root/chunks, deep hash, sign, verify.
* :mod:`~imagemint.arweave.store`: the ``ArchiveStore`` port, ``ArchiveRecord``, ``ArchiveError``.
* :mod:`~imagemint.arweave.local_store`: ``LocalSignedStore``, the embedded default (signed, kept in S3).
* :mod:`~imagemint.arweave.gateway_store`: ``GatewayArchiveStore``, a real gateway (ArLocal, arweave.net).
"""
