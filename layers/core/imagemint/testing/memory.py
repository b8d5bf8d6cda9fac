"""In-memory implementations of the ports, for unit tests (fakes at the seam)."""

from __future__ import annotations

import copy
import threading
from typing import Any

from imagemint.domain.credits import insufficient
from imagemint.domain.models import OPEN_STATUSES, Account, ApiKeyRecord, Job, LedgerEntry, now
from imagemint.errors import Conflict, NotFound


class MemoryImageStore:
    def __init__(self, base_url: str = "memory://bucket") -> None:
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self._base = base_url

    def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None:
        self.objects[key] = (bytes(data), media_type, dict(metadata or {}))

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"No object {key}")
        return self.objects[key][0]

    def head(self, key: str) -> dict[str, Any] | None:
        if key not in self.objects:
            return None
        data, media_type, metadata = self.objects[key]
        return {"size": len(data), "content_type": media_type, "metadata": metadata}

    def url(self, key: str, expires_in: int) -> str:
        return f"{self._base}/{key}?expires_in={expires_in}"


class MemoryJobStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def create(self, job: Job) -> None:
        with self._lock:
            if job.job_id in self.jobs:
                raise Conflict(f"Job {job.job_id} exists")
            self.jobs[job.job_id] = job.model_copy(deep=True)

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job.model_copy(deep=True) if job else None

    def status(self, job_id: str) -> str | None:
        job = self.jobs.get(job_id)
        return job.status if job else None

    def update(self, job_id: str, *, expect_status: str | None = None, **fields: Any) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise NotFound(f"Job {job_id} not found")
            if expect_status is not None and job.status != expect_status:
                raise Conflict(f"Job is {job.status}, not {expect_status}")
            data = job.model_dump()
            data.update(copy.deepcopy(fields))
            data["updated_at"] = now()
            if "status" in fields:
                data["transitions"] = [
                    *data["transitions"],
                    {"status": fields["status"], "at": data["updated_at"]},
                ]
            self.jobs[job_id] = Job.model_validate(data)
            return self.jobs[job_id].model_copy(deep=True)

    def stale_open_jobs(self, updated_before: float, limit: int) -> list[Job]:
        with self._lock:
            found = [
                j.model_copy(deep=True)
                for j in self.jobs.values()
                if j.status in OPEN_STATUSES and j.updated_at < updated_before
            ]
        return sorted(found, key=lambda j: j.updated_at)[:limit]


class MemoryAccountStore:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, ApiKeyRecord] = {}
        self.ledger: dict[tuple[str, str], LedgerEntry] = {}
        self.collections: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def create_account(self, account: Account) -> None:
        with self._lock:
            if account.account_id in self.accounts:
                raise ValueError("account exists")
            self.accounts[account.account_id] = account

    def get_account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def put_key(self, record: ApiKeyRecord) -> None:
        self.keys[record.key_hash] = record

    def get_key(self, key_hash: str) -> ApiKeyRecord | None:
        return self.keys.get(key_hash)

    def touch_key(self, key_hash: str, at: float, min_interval_s: float) -> bool:
        with self._lock:
            record = self.keys.get(key_hash)
            if record is None:
                return False
            if record.last_used_at is not None and record.last_used_at >= at - min_interval_s:
                return False
            self.keys[key_hash] = record.model_copy(update={"last_used_at": at})
            return True

    def revoke_key(self, key_hash: str, at: float) -> ApiKeyRecord | None:
        with self._lock:
            record = self.keys.get(key_hash)
            if record is None:
                return None
            record = record.model_copy(update={"revoked": True, "revoked_at": record.revoked_at or at})
            self.keys[key_hash] = record
            return record

    def list_account_items(self, account_id: str) -> tuple[list[ApiKeyRecord], list[LedgerEntry]]:
        keys = sorted(
            (k for k in self.keys.values() if k.account_id == account_id), key=lambda k: k.created_at
        )
        ledger = sorted(
            (e for (a, _), e in self.ledger.items() if a == account_id), key=lambda e: e.created_at
        )
        return keys, ledger

    def charge_job(self, entry: LedgerEntry) -> None:
        with self._lock:
            account = self.accounts.get(entry.account_id)
            if account is None:
                raise NotFound("Account not found")
            if (entry.account_id, entry.entry_id) in self.ledger:
                return
            if account.credits < entry.credits:
                raise insufficient(entry.credits, account.credits)
            self.accounts[entry.account_id] = account.model_copy(
                update={"credits": account.credits - entry.credits}
            )
            self.ledger[(entry.account_id, entry.entry_id)] = entry.model_copy(deep=True)

    def refund_job(self, account_id: str, entry_id: str, amount: int, *, reason: str) -> bool:
        with self._lock:
            entry = self.ledger.get((account_id, entry_id))
            account = self.accounts.get(account_id)
            if entry is None or entry.refunded_at is not None or entry.credits < amount or account is None:
                return False
            self.ledger[(account_id, entry_id)] = entry.model_copy(
                update={"refunded": amount, "refunded_at": now(), "refund_reason": reason}
            )
            self.accounts[account_id] = account.model_copy(update={"credits": account.credits + amount})
            return True

    def get_ledger(self, account_id: str, entry_id: str) -> LedgerEntry | None:
        entry = self.ledger.get((account_id, entry_id))
        return entry.model_copy(deep=True) if entry else None

    def grant(self, entry: LedgerEntry) -> int:
        with self._lock:
            account = self.accounts.get(entry.account_id)
            if account is None:
                raise NotFound("Account not found")
            if account.credits + entry.credits < 0:
                raise insufficient(-entry.credits, account.credits)
            balance = account.credits + entry.credits
            self.accounts[entry.account_id] = account.model_copy(update={"credits": balance})
            self.ledger[(entry.account_id, entry.entry_id)] = entry.model_copy(deep=True)
            return balance

    def get_collection(self, account_id: str, key: str) -> str | None:
        return self.collections.get((account_id, key))

    def set_collection(self, account_id: str, key: str, address: str) -> str:
        with self._lock:
            if account_id not in self.accounts:
                raise NotFound("Account not found")
            return self.collections.setdefault((account_id, key), address)


class MemoryNonceAllocator:
    """:class:`~imagemint.domain.ports.NonceAllocator` in memory (the DynamoDB counter's rules)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, int], int] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def allocate(self, signer: str, chain_id: int, floor: int) -> int:
        with self._lock:
            self.calls += 1
            key = (signer.lower(), int(chain_id))
            nonce = max(self.counters.get(key, 0), int(floor))
            self.counters[key] = nonce + 1
            return nonce


class MemoryMintQueue:
    """:class:`~imagemint.domain.ports.MintQueue` in memory (the DynamoDB item's rules)."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _q(self, queue: str) -> dict[str, Any]:
        return self.queues.setdefault(queue, {"waiting": {}, "taken": {}, "leader": None, "until": 0.0})

    def enqueue(self, queue: str, job_id: str, entry: dict[str, Any]) -> bool:
        with self._lock:
            q = self._q(queue)
            if job_id in q["taken"]:
                return False
            q["waiting"][job_id] = copy.deepcopy(entry)
            return True

    def state(self, queue: str) -> tuple[dict[str, dict[str, Any]], dict[str, str], str | None, float]:
        with self._lock:
            q = self._q(queue)
            return copy.deepcopy(q["waiting"]), dict(q["taken"]), q["leader"], q["until"]

    def lead(self, queue: str, job_id: str, until: float, now: float) -> bool:
        with self._lock:
            q = self._q(queue)
            if q["leader"] not in (None, job_id) and q["until"] >= now:
                return False
            q["leader"], q["until"] = job_id, until
            return True

    def take(self, queue: str, job_id: str, job_ids: list[str]) -> bool:
        with self._lock:
            q = self._q(queue)
            if q["leader"] != job_id or any(j not in q["waiting"] for j in job_ids):
                return False
            for j in job_ids:
                del q["waiting"][j]
                q["taken"][j] = job_id
            return True

    def done(self, queue: str, job_id: str, job_ids: list[str]) -> None:
        with self._lock:
            q = self._q(queue)
            for j in job_ids:
                if q["taken"].get(j) == job_id:
                    del q["taken"][j]

    def untake(self, queue: str, job_id: str, holder: str, entry: dict[str, Any]) -> bool:
        with self._lock:
            q = self._q(queue)
            if q["taken"].get(job_id) != holder:
                return False
            del q["taken"][job_id]
            q["waiting"][job_id] = copy.deepcopy(entry)
            return True

    def release(self, queue: str, job_id: str) -> None:
        with self._lock:
            q = self._q(queue)
            if q["leader"] == job_id:
                q["leader"], q["until"] = None, 0.0


def memory_idempotency_store() -> Any:
    """An in-memory Powertools idempotency persistence layer with DynamoDB's put conditions (unit tests)."""
    import time

    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
        STATUS_CONSTANTS,
        DataRecord,
    )

    class MemoryIdempotencyStore(BasePersistenceLayer):
        def __init__(self) -> None:
            super().__init__()
            self.records: dict[str, DataRecord] = {}
            self._lock = threading.Lock()

        def _get_record(self, idempotency_key: str) -> DataRecord:
            record = self.records.get(idempotency_key)
            if record is None:
                raise IdempotencyItemNotFoundError
            return copy.copy(record)

        def _put_record(self, data_record: DataRecord) -> None:
            with self._lock:
                old = self.records.get(data_record.idempotency_key)
                at = time.time()
                free = (
                    old is None
                    or (old.expiry_timestamp or 0) < at
                    or (
                        old._status == STATUS_CONSTANTS["INPROGRESS"]
                        and old.in_progress_expiry_timestamp is not None
                        and old.in_progress_expiry_timestamp < at * 1000
                    )
                )
                if not free:
                    self._validate_payload(data_payload=data_record, stored_data_record=old)
                    raise IdempotencyItemAlreadyExistsError(old_data_record=copy.copy(old))
                self.records[data_record.idempotency_key] = data_record

        def _update_record(self, data_record: DataRecord) -> None:
            with self._lock:
                self.records[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record: DataRecord) -> None:
            with self._lock:
                self.records.pop(data_record.idempotency_key, None)

    return MemoryIdempotencyStore()
