"""Archiving survives a re-run after a crash: the signed transaction is journalled before it is stored,
and a re-run commits that same transaction (same id, one item) instead of signing a second one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from imagemint import wiring
from imagemint.adapters.arweave.store import (
    ArchiveError,
    ArchiveRecord,
    ArchiveStore,
    archive_once,
    restore_signed,
)
from imagemint.adapters.arweave.tx import Transaction
from imagemint.adapters.arweave.wallet import generate_wallet
from imagemint.domain import provenance
from imagemint.domain.models import Job, StoredImage
from imagemint.testing.memory import MemoryImageStore
from imagemint.wiring import Deps
from imagemint_dev.embedded.arweave_store import LocalSignedStore

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(300 * 1024)  # two chunks
TAGS = [("Content-Type", "image/png"), ("Job-Id", "job-1")]


@pytest.fixture(scope="module")
def jwk() -> dict[str, str]:
    return generate_wallet()


@pytest.fixture
def blobs() -> MemoryImageStore:
    return MemoryImageStore()


@pytest.fixture
def store(blobs: MemoryImageStore, jwk: dict[str, str]) -> LocalSignedStore:
    return LocalSignedStore(blobs, jwk, "https://arweave.net")


class Journal:
    """One journal slot; ``blob_keys_at_save`` is what the store held when the header was saved."""

    def __init__(self, blobs: MemoryImageStore | None = None, header: str | None = None) -> None:
        self.header = header
        self.saves = 0
        self._blobs = blobs
        self.blob_keys_at_save: list[str] = []

    def load(self) -> str | None:
        return self.header

    def save(self, header: str) -> None:
        self.header = header
        self.saves += 1
        if self._blobs is not None:
            self.blob_keys_at_save = sorted(self._blobs.objects)


def arweave_keys(blobs: MemoryImageStore) -> list[str]:
    return sorted(k for k in blobs.objects if k.startswith("arweave/"))


def test_the_header_is_journalled_before_anything_is_stored(
    store: LocalSignedStore, blobs: MemoryImageStore
) -> None:
    journal = Journal(blobs)
    record = archive_once(store, PNG, TAGS, load=journal.load, save=journal.save)
    assert journal.saves == 1 and journal.blob_keys_at_save == []  # saved first, stored after
    assert json.loads(journal.header)["id"] == record.id and json.loads(journal.header)["data"] == ""
    assert arweave_keys(blobs) == [f"arweave/{record.id}", f"arweave/{record.id}.json"]
    assert store.read(record.id) == (PNG, "image/png")


def test_rerun_after_a_complete_run_adds_nothing(store: LocalSignedStore, blobs: MemoryImageStore) -> None:
    journal = Journal()
    first = archive_once(store, PNG, TAGS, load=journal.load, save=journal.save)
    keys = arweave_keys(blobs)
    again = archive_once(store, PNG, TAGS, load=journal.load, save=journal.save)
    assert again == first and journal.saves == 1
    assert arweave_keys(blobs) == keys


def test_rerun_after_a_kill_between_journal_and_store_stores_the_journalled_tx(
    store: LocalSignedStore, blobs: MemoryImageStore
) -> None:
    signed = store.prepare(PNG, TAGS)  # the killed run: signed and journalled, nothing stored
    journal = Journal(header=signed.to_json(include_data=False))
    record = archive_once(store, PNG, TAGS, load=journal.load, save=journal.save)
    assert record.id == signed.id and journal.saves == 0
    assert arweave_keys(blobs) == [f"arweave/{signed.id}", f"arweave/{signed.id}.json"]


def test_signing_twice_gives_two_ids(store: LocalSignedStore) -> None:
    # Why the journal matters: RSA-PSS is randomised.
    assert store.prepare(PNG, TAGS).id != store.prepare(PNG, TAGS).id


def test_commit_is_idempotent(store: LocalSignedStore, blobs: MemoryImageStore) -> None:
    signed = store.prepare(b"once", [("Content-Type", "text/plain")])
    assert store.commit(signed) == store.commit(signed) == ArchiveRecord.from_transaction(signed)
    assert len(arweave_keys(blobs)) == 2


def test_a_journalled_header_of_other_data_is_not_reused(store: LocalSignedStore) -> None:
    stale = store.prepare(b"other data", TAGS)
    journal = Journal(header=stale.to_json(include_data=False))
    record = archive_once(store, PNG, TAGS, load=journal.load, save=journal.save)
    assert record.id != stale.id and json.loads(journal.header)["id"] == record.id
    assert restore_signed(stale.to_json(include_data=False), PNG) is None
    assert restore_signed("not json", PNG) is None and restore_signed(None, PNG) is None


def test_commit_refuses_a_tampered_or_foreign_transaction(store: LocalSignedStore) -> None:
    signed = store.prepare(b"mine", [("Content-Type", "text/plain")])
    with pytest.raises(ArchiveError) as info:
        store.commit(replace(signed, data=b"not mine"))
    assert info.value.details["reason"] == "integrity"
    other = LocalSignedStore(MemoryImageStore(), generate_wallet(), "https://arweave.net")
    with pytest.raises(ArchiveError) as info:
        other.commit(signed)
    assert info.value.details["reason"] == "integrity"


class RefusingFirstStore:
    """A fake store (the port) whose gateway refuses the first transaction committed to it."""

    def __init__(self, inner: LocalSignedStore) -> None:
        self.inner = inner
        self.refused: set[str] = set()

    def archive(self, data: bytes, tags: list[tuple[str, str]]) -> ArchiveRecord:
        return self.commit(self.prepare(data, tags))

    def prepare(self, data: bytes, tags: list[tuple[str, str]]) -> Transaction:
        return self.inner.prepare(data, tags)

    def commit(self, signed: Transaction) -> ArchiveRecord:
        if not self.refused:
            self.refused.add(signed.id)
            raise ArchiveError("anchor expired", reason="rejected", tx_id=signed.id)
        return self.inner.commit(signed)

    def read(self, tx_id: str) -> tuple[bytes, str]:
        return self.inner.read(tx_id)

    def gateway_url(self, tx_id: str) -> str:
        return self.inner.gateway_url(tx_id)


def test_a_journalled_tx_the_gateway_refuses_is_replaced_once(store: LocalSignedStore) -> None:
    fake = RefusingFirstStore(store)
    assert isinstance(fake, ArchiveStore)
    signed = store.prepare(PNG, TAGS)
    journal = Journal(header=signed.to_json(include_data=False))
    record = archive_once(fake, PNG, TAGS, load=journal.load, save=journal.save)
    assert fake.refused == {signed.id} and record.id != signed.id
    assert json.loads(journal.header)["id"] == record.id


def test_other_failures_of_a_journalled_tx_are_raised(store: LocalSignedStore) -> None:
    class Unreachable(RefusingFirstStore):
        def commit(self, signed: Transaction) -> ArchiveRecord:
            raise ArchiveError("down", reason="unreachable")

    signed = store.prepare(PNG, TAGS)
    journal = Journal(header=signed.to_json(include_data=False))
    with pytest.raises(ArchiveError):
        archive_once(Unreachable(store), PNG, TAGS, load=journal.load, save=journal.save)
    assert json.loads(journal.header)["id"] == signed.id  # kept for the next re-run


# ----------------------------------------------------------------------------- the pipeline steps


@pytest.fixture
def prov_deps(deps: Deps, jwk: dict[str, str], tmp_path: Any) -> Iterator[Deps]:
    wallet = tmp_path / "wallet.json"
    wallet.write_text(json.dumps(jwk))
    deps.settings = deps.settings.model_copy(
        update={"archive_mode": "embedded", "arweave_wallet_file": str(wallet)}
    )
    wiring.reset("archive_store", "minter")
    yield deps
    wiring.reset("archive_store", "minter")


def make_job(deps: Deps, job_id: str) -> StoredImage:
    deps.jobs.create(Job(job_id=job_id, account_id="acct", dialect="legacy", model="gpt-image-1"))
    key = f"images/{job_id}/0.png"
    deps.images.put(key, PNG, "image/png")
    return StoredImage(
        key=key, media_type="image/png", width=1024, height=1024, bytes=len(PNG), sha256="0" * 64
    )


def test_archive_image_run_twice_is_one_item(prov_deps: Deps) -> None:
    image = make_job(prov_deps, "job-twice").model_dump()
    first = provenance.archive_image(prov_deps, "job-twice", image, 0)
    again = provenance.archive_image(prov_deps, "job-twice", image, 0)  # the retry after a kill
    assert again == first
    keys = [k for k in prov_deps.images.objects if k.startswith("arweave/") and k.endswith(".json")]
    assert keys == [f"arweave/{first['id']}.json"]
    job = prov_deps.jobs.get("job-twice")
    assert job.archive_0 == first["id"] and json.loads(job.archive_tx_0)["id"] == first["id"]


def test_archive_image_slots_are_per_index_and_per_job(prov_deps: Deps) -> None:
    image = make_job(prov_deps, "job-a").model_dump()
    make_job(prov_deps, "job-b")
    a0 = provenance.archive_image(prov_deps, "job-a", image, 0)
    a1 = provenance.archive_image(prov_deps, "job-a", image, 1)
    b0 = provenance.archive_image(prov_deps, "job-b", image, 0)
    assert len({a0["id"], a1["id"], b0["id"]}) == 3
