"""The archive port: where generated images and their metadata are kept permanently.

Two implementations: :class:`imagemint.arweave.local_store.LocalSignedStore`
(the embedded default: real signed format-2 transactions kept in the image
store) and :class:`imagemint.arweave.gateway_store.GatewayArchiveStore` (a
real Arweave gateway). Both return the same :class:`ArchiveRecord`, whose id
is final at signing (``base64url(sha256(signature))``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from imagemint.arweave.wallet import b64url_encode
from imagemint.errors import ImagemintError, _register

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class ArchiveError(ImagemintError):
    """Archiving failed or a read found nothing trustworthy.

    ``details["reason"]`` says which: ``rejected`` (the gateway refused the
    transaction, e.g. an unfunded wallet), ``dropped`` (accepted but not
    found after every attempt), ``unreachable``, ``bad_response``,
    ``chunk_failed``, ``invalid_tags``, ``integrity`` (data or
    header does not match its signature / data_root), ``config``.
    """

    code: ClassVar[str] = "archive_failed"
    status: ClassVar[int] = 502


# errors.from_dict() rebuilds errors by code from job records; make it know ours.
_register(ArchiveError)


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
        """The record of a signed :class:`imagemint.arweave.tx.Transaction`."""
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

        Returns only once the item is stored; raises :class:`ArchiveError` otherwise.
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
