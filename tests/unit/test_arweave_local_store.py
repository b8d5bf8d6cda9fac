"""LocalSignedStore: real signed Arweave transactions kept in an ImageStore (offline)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from imagemint.adapters.arweave.store import ArchiveError, ArchiveRecord, ArchiveStore, ar_uri
from imagemint.adapters.arweave.tx import Transaction, verify
from imagemint.adapters.arweave.wallet import b64url_decode, b64url_encode, generate_wallet, wallet_address
from imagemint.errors import NotFound, from_dict
from imagemint.testing.memory import MemoryImageStore
from imagemint_dev.embedded.arweave_store import LocalSignedStore

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(600 * 1024)  # three chunks
GATEWAY = "https://arweave.net/"


@pytest.fixture(scope="module")
def jwk() -> dict[str, str]:
    return generate_wallet()


@pytest.fixture
def blobs() -> MemoryImageStore:
    return MemoryImageStore()


@pytest.fixture
def store(blobs: MemoryImageStore, jwk: dict[str, str]) -> LocalSignedStore:
    return LocalSignedStore(blobs, jwk, GATEWAY)


def test_is_an_archive_store(store: LocalSignedStore) -> None:
    assert isinstance(store, ArchiveStore)


def test_archive_then_read_back_bytes_and_content_type(store: LocalSignedStore) -> None:
    rec = store.archive(PNG, [("Content-Type", "image/png"), ("App-Name", "imagemint")])
    data, content_type = store.read(rec.id)
    assert data == PNG
    assert content_type == "image/png"

    meta = json.dumps({"name": "a bridge", "image": ar_uri(rec.id)}).encode()
    rec2 = store.archive(meta, [("Content-Type", "application/json")])
    assert store.read(rec2.id) == (meta, "application/json")


def test_record_fields(store: LocalSignedStore, jwk: dict[str, str]) -> None:
    tags = [("Content-Type", "image/png"), ("Prompt", "Brücke über den Fluss ✓ 画像")]
    rec = store.archive(PNG, tags)
    assert isinstance(rec, ArchiveRecord)
    assert rec.id == b64url_encode(hashlib.sha256(b64url_decode(rec.signature)).digest())
    assert len(rec.id) == 43
    assert rec.owner == jwk["n"]
    assert [(t.name, t.value) for t in rec.tags] == tags
    assert (rec.target, rec.quantity, rec.data, rec.reward, rec.format) == ("", "0", "", "0", 2)
    assert rec.data_size == str(len(PNG))
    assert rec.last_tx == ""
    assert rec.content_type == "image/png"
    assert rec.uri == f"ar://{rec.id}"
    assert store.address == wallet_address(jwk)


def test_last_tx_chains_to_the_previous_item(store: LocalSignedStore) -> None:
    first = store.archive(b"one", [("Content-Type", "text/plain")])
    second = store.archive(b"two", [("Content-Type", "text/plain")])
    third = store.archive(b"three", [])
    assert (first.last_tx, second.last_tx, third.last_tx) == ("", first.id, second.id)


def test_to_arweave_result_has_recoups_shape(store: LocalSignedStore) -> None:
    rec = store.archive(b"{}", [("Content-Type", "application/json")])
    result = rec.to_arweave_result()
    assert list(result) == [
        "id",
        "last_tx",
        "owner",
        "tags",
        "target",
        "quantity",
        "data",
        "reward",
        "signature",
        "format",
    ]
    assert result["tags"] == [{"name": "Content-Type", "value": "application/json"}]
    assert result["id"] == rec.id and result["format"] == 2 and result["data"] == ""
    wire = rec.to_arweave_result(encode_tags=True)["tags"]
    assert wire == [{"name": b64url_encode(b"Content-Type"), "value": b64url_encode(b"application/json")}]
    json.dumps(result)  # serialisable


def test_layout_in_the_image_store(store: LocalSignedStore, blobs: MemoryImageStore) -> None:
    rec = store.archive(PNG, [("Content-Type", "image/png")])
    data, media_type, metadata = blobs.objects[f"arweave/{rec.id}"]
    assert (data, media_type, metadata["arweave-id"]) == (PNG, "image/png", rec.id)
    header_bytes, header_type, _ = blobs.objects[f"arweave/{rec.id}.json"]
    assert header_type == "application/json"
    header = json.loads(header_bytes)
    assert header["data"] == "" and header["id"] == rec.id
    tx = Transaction.from_dict(header)
    assert verify(tx)  # the stored header is a valid signed Arweave transaction
    from dataclasses import replace

    assert verify(replace(tx, data=PNG))


def test_default_content_type(store: LocalSignedStore) -> None:
    rec = store.archive(b"\x00\x01", [("App-Name", "imagemint")])
    assert store.read(rec.id) == (b"\x00\x01", "application/octet-stream")


def test_gateway_url(store: LocalSignedStore) -> None:
    rec = store.archive(b"x", [("Content-Type", "text/plain")])
    assert store.gateway_url(rec.id) == f"https://arweave.net/{rec.id}"


@pytest.mark.parametrize("tx_id", ["A" * 43, "../../etc/passwd", "", "short"])
def test_read_unknown_or_malformed_id_is_not_found(store: LocalSignedStore, tx_id: str) -> None:
    with pytest.raises(NotFound):
        store.read(tx_id)


def test_read_detects_tampered_data_or_header(store: LocalSignedStore, blobs: MemoryImageStore) -> None:
    rec = store.archive(PNG, [("Content-Type", "image/png")])
    key = f"arweave/{rec.id}"
    data, media_type, meta = blobs.objects[key]
    blobs.objects[key] = (data[:-1] + bytes([data[-1] ^ 1]), media_type, meta)
    with pytest.raises(ArchiveError) as info:
        store.read(rec.id)
    assert info.value.details["reason"] == "integrity"

    rec2 = store.archive(b"abc", [("Content-Type", "text/plain")])
    hkey = f"arweave/{rec2.id}.json"
    header = json.loads(blobs.objects[hkey][0])
    header["tags"][0]["value"] = b64url_encode(b"text/html")
    blobs.objects[hkey] = (json.dumps(header).encode(), "application/json", {})
    with pytest.raises(ArchiveError):
        store.read(rec2.id)


def test_invalid_tags_raise_archive_error(store: LocalSignedStore) -> None:
    with pytest.raises(ArchiveError) as info:
        store.archive(b"x", [("Prompt", "x" * 3000)])
    assert info.value.details["reason"] == "invalid_tags"
    assert info.value.status == 502 and info.value.code == "archive_failed"


def test_archive_error_survives_a_job_record_round_trip() -> None:
    err = ArchiveError("gateway said no", reason="rejected")
    back = from_dict(err.to_dict())
    assert type(back) is ArchiveError and back.details == {"reason": "rejected"}


def test_blob_failures_become_archive_errors(jwk: dict[str, str]) -> None:
    class Broken(MemoryImageStore):
        def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None:
            raise OSError("disk full")

    store = LocalSignedStore(Broken(), jwk, GATEWAY)
    with pytest.raises(ArchiveError) as info:
        store.archive(b"x", [("Content-Type", "text/plain")])
    assert info.value.details["reason"] == "store_failed"
