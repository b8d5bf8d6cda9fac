"""In-memory implementations of the ports, for unit tests (fakes at the seam)."""

from __future__ import annotations

import copy
import threading
from typing import Any

from imagemint.errors import InsufficientCredits, NotFound
from imagemint.models import Account, ApiKeyRecord, Job, now


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
                raise ValueError("job exists")
            self.jobs[job.job_id] = job.model_copy(deep=True)

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job.model_copy(deep=True) if job else None

    def update(self, job_id: str, **fields: Any) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise NotFound(f"Job {job_id} not found")
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


class MemoryAccountStore:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, ApiKeyRecord] = {}
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

    def _add(self, account_id: str, delta: int, require: bool) -> int:
        with self._lock:
            account = self.accounts.get(account_id)
            if account is None:
                raise NotFound("Account not found")
            if require and account.credits + delta < 0:
                raise InsufficientCredits("Insufficient credits", required=-delta, available=account.credits)
            self.accounts[account_id] = account.model_copy(update={"credits": account.credits + delta})
            return account.credits + delta

    def charge(self, account_id: str, amount: int) -> int:
        return self._add(account_id, -amount, True)

    def refund(self, account_id: str, amount: int) -> int:
        return self._add(account_id, amount, False)

    def add_credits(self, account_id: str, amount: int) -> int:
        return self._add(account_id, amount, False)
