"""The dependencies of one process, built lazily from settings and cached.

Handlers and steps ask this module for the job store, account store, image
store and pipeline; tests build :class:`Deps` with in-memory fakes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from imagemint.ports import AccountStore, ImageStore, JobStore, Pipeline
from imagemint.ratelimit import DynamoLimitStore, LimitStore
from imagemint.settings import Settings, get_settings


@dataclass
class Deps:
    settings: Settings
    jobs: JobStore
    accounts: AccountStore
    images: ImageStore
    pipeline: Pipeline | None = None
    # Rate-limit counters (imagemint.ratelimit) and the Idempotency-Key persistence layer
    # (imagemint.idempotency); None -> that feature is off (unit tests that do not set them).
    limits: LimitStore | None = None
    idempotency: Any | None = None


_override: Deps | None = None


def set_deps(deps: Deps) -> None:
    """Use ``deps`` for every later ``get_deps()`` (tests, the local runtime) until ``reset_deps()``."""
    global _override
    _override = deps


def get_deps() -> Deps:
    return _override if _override is not None else _build_deps()


@lru_cache(maxsize=1)
def _build_deps() -> Deps:
    from imagemint.adapters.aws import (
        DynamoAccountStore,
        DynamoJobStore,
        S3ImageStore,
        StepFunctionsPipeline,
        client,
    )

    s = get_settings()
    ddb: Any = client("dynamodb", s.region)
    pipeline = (
        StepFunctionsPipeline(client("stepfunctions", s.region), s.state_machine_arn)
        if s.state_machine_arn
        else None
    )
    return Deps(
        settings=s,
        jobs=DynamoJobStore(ddb, s.jobs_table),
        accounts=DynamoAccountStore(ddb, s.accounts_table),
        images=S3ImageStore(client("s3", s.region), s.bucket),
        pipeline=pipeline,
        limits=DynamoLimitStore(ddb, s.accounts_table),
    )


def reset_deps() -> None:
    global _override
    _override = None
    _build_deps.cache_clear()
