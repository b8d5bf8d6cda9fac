"""Credits: what a request costs, taking it before generation and giving back what was not delivered.

One credit is ``USD_PER_CREDIT`` (a tenth of a US cent). A request costs
``credits_per_image(price) * n``, where ``price`` is the model registry's USD
price per image for the model that runs at the size and quality asked for;
every image costs at least one credit. This module is the only place that
converts money to credits.

Life of a charge (every write is one atomic DynamoDB write, see
``AccountStore.charge_job`` / ``refund_job``):

1. ``charge`` (``service.submit``, after validation and job creation): the
   account's balance goes down by the price *and* the job's ledger line
   (``ledger#<account>#<job>``) is created, in one conditional transaction;
   the balance can never go below zero, and a job is never charged twice.
2. ``refund_failed`` (``steps.record_failure``, the state machine's Catch
   path): the whole charge comes back, once. The ledger line's
   ``refunded_at`` is written under ``attribute_not_exists(refunded_at)`` in
   the same transaction that credits the account, so running the failure
   path twice (Step Functions retries it) refunds once.
3. ``settle`` (``steps.record``, after a success): when fewer images were
   delivered than asked for, the undelivered part comes back, under the same
   once-only condition. When the provider reported token usage (GPT image
   models are priced by tokens), the charge is also trued down to what the
   call really cost (``actual_usd``): the quote is an upper estimate ("auto"
   quality is quoted at its highest) and is never exceeded.

So for every job: charged - refunded = per_image x images delivered, or the
credits of the real token cost when that is lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from imagemint.domain.models import Job, LedgerEntry
from imagemint.errors import InsufficientCredits
from imagemint.observability import logger

if TYPE_CHECKING:
    from imagemint.domain.ports import Deps

USD_PER_CREDIT = Decimal("0.001")
MIN_CREDITS_PER_IMAGE = 1


def credits_per_image(price_usd: float) -> int:
    """Credits for one image at ``price_usd``, rounded up to a whole credit, at least one."""
    exact = Decimal(str(price_usd)) / USD_PER_CREDIT
    return max(MIN_CREDITS_PER_IMAGE, math.ceil(exact))


def insufficient(required: int, available: int) -> InsufficientCredits:
    """The 402 every dialect renders with the required and available amounts."""
    return InsufficientCredits(
        f"Insufficient credits: this request needs {required}, the account has {available}",
        required=required,
        available=available,
    )


def usd(credits: int) -> float:
    return float(Decimal(credits) * USD_PER_CREDIT)


@dataclass(frozen=True)
class Quote:
    per_image: int
    images: int

    @property
    def total(self) -> int:
        return self.per_image * self.images


def quote(price_per_image_usd: float, images: int) -> Quote:
    return Quote(per_image=credits_per_image(price_per_image_usd), images=images)


def charge(deps: Deps, job: Job, q: Quote) -> None:
    """Take ``q.total`` credits for ``job`` (InsufficientCredits with required/available otherwise)."""
    entry = LedgerEntry(
        account_id=job.account_id,
        entry_id=job.job_id,
        kind="job",
        credits=q.total,
        per_image=q.per_image,
        images=q.images,
        model=job.model,
        dialect=job.dialect,
    )
    deps.accounts.charge_job(entry)
    deps.jobs.update(job.job_id, credits_charged=q.total)
    logger.info("credits charged", extra={"job_id": job.job_id, "credits": q.total})


def _refund(
    deps: Deps, job_id: str, amount_of: str, delivered: int = 0, actual_usd: float | None = None
) -> int:
    job = deps.jobs.get(job_id)
    if job is None:
        return 0
    entry = deps.accounts.get_ledger(job.account_id, job_id)
    if entry is None or entry.refunded_at is not None:
        return 0
    if amount_of == "failure":
        amount = entry.credits
    else:
        kept = entry.per_image * min(delivered, entry.images)
        if actual_usd is not None and delivered > 0:
            exact = math.ceil(Decimal(str(actual_usd)) / USD_PER_CREDIT)
            kept = min(kept, max(MIN_CREDITS_PER_IMAGE * min(delivered, entry.images), exact))
        amount = entry.credits - kept
    if amount <= 0:
        return 0
    if not deps.accounts.refund_job(job.account_id, job_id, amount, reason=amount_of):
        return 0  # refunded already, by an earlier run of this path
    deps.jobs.update(job_id, credits_refunded=amount)
    logger.info("credits refunded", extra={"job_id": job_id, "credits": amount, "reason": amount_of})
    return amount


def refund_failed(deps: Deps, job_id: str) -> int:
    """Give back the whole charge of a failed job, once; the credits refunded now (0 if done before)."""
    return _refund(deps, job_id, "failure")


def settle(deps: Deps, job_id: str, delivered: int, actual_usd: float | None = None) -> int:
    """Give back the part of the charge for images asked for but not delivered (and, given the
    real cost ``actual_usd`` from token usage, what the quote took beyond it), once."""
    return _refund(deps, job_id, "undelivered", delivered, actual_usd)
