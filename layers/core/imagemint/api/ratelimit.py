"""Rate limits per API key: requests per minute and concurrent generations.

* **Requests per minute**: a fixed one-minute window per key, one DynamoDB
  counter item per window (``rl#<subject>#<minute>`` in the accounts table),
  incremented under ``hits < limit`` and dropped by TTL (attribute ``ttl``).
  Over the limit: 429 with ``Retry-After`` (seconds to the next window).
* **Concurrent generations**: one item per key (``cc#<subject>``) holding a
  map of leases ``{lease id: expiry}``; a lease is added under
  ``size(leases) < limit`` and removed when the generation ends. A lease older
  than ``LEASE_S`` (a crashed function) is cleared by the next caller that
  finds the map full.

Every answer carries ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``
(``Reset`` in UTC epoch seconds); agent.ai's dialect names them
``X-AgentAI-RateLimit-*``. A key's own ``rpm`` / ``concurrency`` override the
deployment's defaults (``IMAGEMINT_RATE_LIMIT_RPM``, ``..._CONCURRENCY``). A
keyless legacy call is limited per account.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagemint.domain.ports import LEASE_S
from imagemint.errors import RateLimited

if TYPE_CHECKING:
    from imagemint.domain.auth import Principal
    from imagemint.domain.ports import Deps

WINDOW_S = 60
CONCURRENCY_RETRY_AFTER_S = 2
HEADER_PREFIX = "X-RateLimit-"
AGENTAI_HEADER_PREFIX = "X-AgentAI-RateLimit-"


@dataclass(frozen=True)
class Usage:
    limit: int
    remaining: int
    reset_at: int  # UTC epoch seconds when the window ends

    def headers(self, prefix: str = HEADER_PREFIX) -> dict[str, str]:
        return {
            f"{prefix}Limit": str(self.limit),
            f"{prefix}Remaining": str(self.remaining),
            f"{prefix}Reset": str(self.reset_at),
        }


def subject(principal: Principal) -> str:
    """What a limit is counted on: the key (by a part of its HMAC, never the key), else the account."""
    if principal.key is not None:
        return f"key:{principal.key.key_hash[:32]}"
    return f"account:{principal.account.account_id}"


def limits_for(deps: Deps, principal: Principal) -> tuple[int, int]:
    s = deps.settings
    key = principal.key
    rpm = key.rpm if key is not None and key.rpm else s.rate_limit_rpm
    concurrency = key.concurrency if key is not None and key.concurrency else s.rate_limit_concurrency
    return rpm, concurrency


def check_rate(
    deps: Deps, principal: Principal, prefix: str = HEADER_PREFIX, at: float | None = None
) -> Usage | None:
    """Count this request against its key's per-minute limit; RateLimited (429) when it is over.

    None when no limit store is configured (unit tests on fakes that do not set one).
    """
    store = deps.limits
    if store is None:
        return None
    at = time.time() if at is None else at
    rpm, _ = limits_for(deps, principal)
    window = int(at // WINDOW_S)
    reset_at = (window + 1) * WINDOW_S
    count = store.hit(f"{subject(principal)}#{window}", rpm, expires_at=reset_at + WINDOW_S)
    if count is None:
        usage = Usage(rpm, 0, reset_at)
        exc = RateLimited(
            f"Rate limit of {rpm} requests per minute reached for this API key",
            retry_after=max(1, math.ceil(reset_at - at)),
        )
        exc.response_headers = usage.headers(prefix)
        raise exc
    return Usage(rpm, max(0, rpm - count), reset_at)


@contextmanager
def concurrency_slot(deps: Deps, principal: Principal) -> Iterator[None]:
    """Hold one of the key's concurrent-generation slots for the body; RateLimited when none is free."""
    store = deps.limits
    if store is None:
        yield
        return
    _, limit = limits_for(deps, principal)
    slot = subject(principal)
    lease = uuid.uuid4().hex
    if not store.acquire(slot, lease, limit, time.time()):
        raise RateLimited(
            f"This API key already runs {limit} generations at once; retry when one finishes",
            retry_after=CONCURRENCY_RETRY_AFTER_S,
        )
    try:
        yield
    finally:
        try:
            store.release(slot, lease)
        except Exception:  # the lease expires by itself; never replace the answer with this
            from imagemint.observability import logger

            logger.warning("could not release a concurrency lease", extra={"slot": slot})


class MemoryLimitStore:
    """In-memory ``LimitStore`` (unit tests); the DynamoDB one is :mod:`imagemint.adapters.aws.limits`."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.slots: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def hit(self, counter: str, limit: int, expires_at: int) -> int | None:
        with self._lock:
            count = self.counters.get(counter, 0)
            if count >= limit:
                return None
            self.counters[counter] = count + 1
            return count + 1

    def acquire(self, slot: str, lease: str, limit: int, at: float) -> bool:
        with self._lock:
            leases = {k: v for k, v in self.slots.get(slot, {}).items() if v >= at}
            if len(leases) >= limit:
                self.slots[slot] = leases
                return False
            leases[lease] = at + LEASE_S
            self.slots[slot] = leases
            return True

    def release(self, slot: str, lease: str) -> None:
        with self._lock:
            self.slots.get(slot, {}).pop(lease, None)
