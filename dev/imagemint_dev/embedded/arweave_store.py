"""The embedded archive: real signed Arweave transactions, kept in the image store.

Every item is a genuine format-2 transaction signed by the configured wallet
(reward ``"0"``; ``last_tx`` chains to the previous item this store signed),
so its id is the id the item would have on Arweave and anyone can check the
signature against the stored header. Nothing is sent to a gateway.

Layout in the :class:`~imagemint.domain.ports.ImageStore`:

* ``arweave/<id>``: the data, with the ``Content-Type`` tag as media type;
* ``arweave/<id>.json``: the signed transaction header (``data`` empty).

``read()`` verifies the header's signature and the data against its
``data_root`` before returning anything.

``archive()`` is ``commit(prepare())``: ``prepare`` signs, ``commit`` writes
the two objects under the transaction's id. Committing the same signed
transaction again writes nothing new (the keys are its id; an item whose
header exists is left as it is), so a journalled transaction
(:func:`imagemint.adapters.arweave.store.archive_once`) re-committed after a crash
stays one item.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from imagemint.adapters.arweave.store import DEFAULT_CONTENT_TYPE, ArchiveError, ArchiveRecord
from imagemint.adapters.arweave.tx import TX_ID_RE, Transaction, create_transaction, sign, verify
from imagemint.adapters.arweave.wallet import load_wallet, owner, private_key, wallet_address
from imagemint.domain.ports import ImageStore
from imagemint.errors import ImagemintError, NotFound

PREFIX = "arweave/"


class LocalSignedStore:
    def __init__(self, blobs: ImageStore, wallet: dict[str, Any], gateway_base_url: str) -> None:
        jwk = load_wallet(wallet)
        self._blobs = blobs
        self._key = private_key(jwk)  # validated once (~0.2 s); signing is then ~2 ms
        self._owner = owner(jwk)
        self.address = wallet_address(jwk)
        self._base = gateway_base_url.rstrip("/")
        self._last_tx = ""
        self._lock = threading.Lock()

    @staticmethod
    def data_key(tx_id: str) -> str:
        return f"{PREFIX}{tx_id}"

    @staticmethod
    def header_key(tx_id: str) -> str:
        return f"{PREFIX}{tx_id}.json"

    def archive(self, data: bytes, tags: list[tuple[str, str]]) -> ArchiveRecord:
        return self.commit(self.prepare(data, tags))

    def prepare(self, data: bytes, tags: list[tuple[str, str]]) -> Transaction:
        with self._lock:
            last_tx = self._last_tx
        try:
            unsigned = create_transaction(bytes(data), self._owner, tags=tags, reward="0", last_tx=last_tx)
        except ValueError as exc:
            raise ArchiveError(f"Cannot archive: {exc}", reason="invalid_tags") from None
        return sign(unsigned, self._key)

    def commit(self, signed: Transaction) -> ArchiveRecord:
        if signed.owner != self._owner or signed.data is None or not verify(signed):
            raise ArchiveError(
                f"Transaction {signed.id or '(unsigned)'} is not a signed item of this store's wallet",
                reason="integrity",
            )
        content_type = signed.tag("Content-Type") or DEFAULT_CONTENT_TYPE
        header = signed.to_json(include_data=False).encode("utf-8")
        try:
            if self._blobs.head(self.header_key(signed.id)) is None:  # else: committed before
                # Data first: an item exists once its header does (see read()).
                meta = {"arweave-id": signed.id}
                self._blobs.put(self.data_key(signed.id), signed.data, content_type, meta)
                self._blobs.put(self.header_key(signed.id), header, "application/json", meta)
        except ImagemintError:
            raise
        except Exception as exc:
            raise ArchiveError(
                f"Cannot store archive item {signed.id}: {type(exc).__name__}", reason="store_failed"
            ) from exc
        with self._lock:
            self._last_tx = signed.id
        return ArchiveRecord.from_transaction(signed)

    def read(self, tx_id: str) -> tuple[bytes, str]:
        if not isinstance(tx_id, str) or not TX_ID_RE.match(tx_id):
            raise NotFound(f"No archived item {tx_id!r}")
        if self._blobs.head(self.header_key(tx_id)) is None:
            raise NotFound(f"No archived item {tx_id}")
        try:
            tx = Transaction.from_dict(_json(self._blobs.get(self.header_key(tx_id))))
        except ValueError:
            raise ArchiveError(f"The stored header of {tx_id} is unreadable", reason="integrity") from None
        data = self._blobs.get(self.data_key(tx_id))
        tx = replace(tx, data=data)
        if tx.id != tx_id or not verify(tx):
            raise ArchiveError(f"Archived item {tx_id} does not match its signature", reason="integrity")
        return data, tx.tag("Content-Type") or DEFAULT_CONTENT_TYPE

    def gateway_url(self, tx_id: str) -> str:
        return f"{self._base}/{tx_id}"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
