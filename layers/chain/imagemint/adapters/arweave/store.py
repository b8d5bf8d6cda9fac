"""The archive port: where generated images and their metadata are kept permanently.

Two implementations: :class:`imagemint_dev.embedded.arweave_store.LocalSignedStore`
(the embedded default: real signed format-2 transactions kept in the image
store) and :class:`imagemint.adapters.arweave.gateway_store.GatewayArchiveStore` (a
real Arweave gateway). Both return the same :class:`ArchiveRecord`, whose id
is final at signing (``base64url(sha256(signature))``).

Archiving is two phases: :meth:`ArchiveStore.prepare` signs (nothing leaves
the process) and :meth:`ArchiveStore.commit` stores or posts the signed
transaction; committing the same signed transaction again creates nothing new
(same id, same keys in the local store; a gateway already holding it is
asked, not given a second item). RSA-PSS signatures are randomised, so
signing the same data twice gives two ids: :func:`archive_once` keeps the
signed header in a journal (the job record, in the pipeline) BEFORE
committing it, so a step re-run after its function was killed commits the
same transaction instead of a second one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from imagemint.adapters.arweave.tx import Transaction, verify
from imagemint.adapters.arweave.wallet import b64url_encode
from imagemint.errors import ArchiveError

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class ArchiveTag(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: str


class ArchiveRecord(BaseModel):
    """One archived item: the signed transaction header, tags decoded (the data itself is not kept here)."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    tags: list[ArchiveTag] = Field(default_factory=list)
    target: str = ""
    quantity: str = "0"
    data: str = ""
    data_size: str
    data_root: str
    reward: str
    last_tx: str
    signature: str
    format: int = 2

    @classmethod
    def from_transaction(cls, tx: Any) -> ArchiveRecord:
        """The record of a signed :class:`imagemint.adapters.arweave.tx.Transaction`."""
        return cls(
            id=tx.id,
            owner=tx.owner,
            tags=[ArchiveTag(name=n, value=v) for n, v in tx.decoded_tags()],
            target=tx.target,
            quantity=tx.quantity,
            data_size=tx.data_size,
            data_root=tx.data_root,
            reward=tx.reward,
            last_tx=tx.last_tx,
            signature=tx.signature,
            format=tx.format,
        )

    @property
    def content_type(self) -> str:
        for tag in self.tags:
            if tag.name.lower() == "content-type":
                return tag.value
        return DEFAULT_CONTENT_TYPE

    @property
    def uri(self) -> str:
        return ar_uri(self.id)

    def to_arweave_result(self, *, encode_tags: bool = False) -> dict[str, Any]:
        """The shape of Recoup's ``arweaveResult`` (arweave-js transaction fields, no data).

        Tags are decoded ``{name, value}`` strings; ``encode_tags=True`` gives
        the wire form (base64url of the UTF-8 bytes) as arweave-js serialises them.
        """

        def enc(text: str) -> str:
            return b64url_encode(text.encode("utf-8")) if encode_tags else text

        return {
            "id": self.id,
            "last_tx": self.last_tx,
            "owner": self.owner,
            "tags": [{"name": enc(t.name), "value": enc(t.value)} for t in self.tags],
            "target": self.target,
            "quantity": self.quantity,
            "data": self.data,
            "reward": self.reward,
            "signature": self.signature,
            "format": self.format,
        }


def ar_uri(tx_id: str) -> str:
    """The permanent ``ar://`` URI of an item (what token metadata stores)."""
    return f"ar://{tx_id}"


@runtime_checkable
class ArchiveStore(Protocol):
    def archive(self, data: bytes, tags: list[tuple[str, str]]) -> ArchiveRecord:
        """Sign and store ``data`` with ``tags`` (a ``Content-Type`` tag sets its media type).

        ``commit(prepare(data, tags))``. Returns only once the item is stored;
        raises :class:`ArchiveError` otherwise.
        """
        ...

    def prepare(self, data: bytes, tags: list[tuple[str, str]]) -> Transaction:
        """The signed transaction of ``data`` (attached) and ``tags``; nothing is stored or sent.

        Raises :class:`ArchiveError` (``invalid_tags``, or ``unreachable`` when a
        gateway must be asked for the price and anchor).
        """
        ...

    def commit(self, signed: Transaction) -> ArchiveRecord:
        """Store or post ``signed`` (data attached) and return its record once it is kept.

        Idempotent: committing a transaction that is already kept returns the
        same record and adds nothing. Raises :class:`ArchiveError` (``integrity``
        for a transaction that does not verify or is not this store's wallet's).
        """
        ...

    def read(self, tx_id: str) -> tuple[bytes, str]:
        """The stored bytes and content type.

        Raises :class:`imagemint.errors.NotFound` when no such item exists and
        :class:`ArchiveError` when it cannot be read or fails its integrity check.
        """
        ...

    def gateway_url(self, tx_id: str) -> str:
        """A URL the item can be fetched from (the gateway's ``/<id>``)."""
        ...


#: Loads the signed header a journal slot holds (JSON, data not included), or None.
JournalLoad = Callable[[], str | None]
#: Saves the signed header of a journal slot (before it is committed).
JournalSave = Callable[[str], None]


def restore_signed(header_json: str | None, data: bytes) -> Transaction | None:
    """The journalled transaction with ``data`` attached, or None when there is none or it does not fit.

    A header fits when its signature verifies and ``data`` matches its
    ``data_root`` and ``data_size`` (so a stale header of other data is never reused).
    """
    if not header_json:
        return None
    try:
        raw = json.loads(header_json)
        tx = Transaction.from_dict(raw) if isinstance(raw, dict) else None
    except (ValueError, TypeError):
        tx = None
    if tx is None:
        return None
    tx = replace(tx, data=bytes(data))
    return tx if verify(tx) else None


def archive_once(
    store: ArchiveStore,
    data: bytes,
    tags: list[tuple[str, str]],
    *,
    load: JournalLoad,
    save: JournalSave,
) -> ArchiveRecord:
    """Archive ``data`` once per journal slot, however often this runs (a step re-run after a crash).

    1. The slot holds a signed header that fits ``data``: commit that same
       transaction again (idempotent) and return its record.
    2. Otherwise sign, ``save`` the header, and only then commit.

    A crash after 2's ``save`` leaves a header whose transaction may or may
    not have been stored: 1 handles both. A journalled transaction that the
    store refuses outright (``rejected``: e.g. a gateway anchor that expired
    while nothing was posted) and that the store does not hold is replaced by
    a freshly signed one, once; the refusal means it was never kept, so the
    new one cannot duplicate it.
    """
    data = bytes(data)
    header = load()
    signed = restore_signed(header, data)
    if signed is not None:
        try:
            return store.commit(signed)
        except ArchiveError as exc:
            if exc.details.get("reason") != "rejected":
                raise
            log.warning("journalled transaction %s refused; signing a new one", signed.id)
    elif header:
        log.warning("journalled header does not fit the data; signing a new transaction")
    signed = store.prepare(data, tags)
    save(signed.to_json(include_data=False))
    return store.commit(signed)
