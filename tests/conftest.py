"""Shared fixtures: in-memory dependencies, an account with a key, and the event builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from events import http_event
from imagemint import auth
from imagemint.adapters.inline import InlinePipeline
from imagemint.adapters.memory import MemoryAccountStore, MemoryImageStore, MemoryJobStore
from imagemint.deps import Deps, reset_deps, set_deps
from imagemint.models import Account
from imagemint.providers import reset_providers
from imagemint.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(
        jobs_table="jobs",
        accounts_table="accounts",
        bucket="bucket",
        key_hash_secret="test-secret",
        public_base_url="https://api.test",
    )


@pytest.fixture
def deps(settings: Settings) -> Iterator[Deps]:
    """In-memory stores and the inline pipeline, installed as the process's deps (``get_deps()``)."""
    built = Deps(
        settings=settings,
        jobs=MemoryJobStore(),
        accounts=MemoryAccountStore(),
        images=MemoryImageStore(),
    )
    built.pipeline = InlinePipeline(built)
    set_deps(built)
    yield built
    reset_deps()
    reset_providers()


@pytest.fixture
def account(deps: Deps) -> tuple[Account, str]:
    """(account, api_key) of an account with credits."""
    return auth.create_account(deps.accounts, deps.settings, name="Test artist", credits=1000)


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """The event builder (``tests/events.py:http_event``)."""
    return http_event
