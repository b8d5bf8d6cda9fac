"""Shared fixtures: in-memory dependencies, an account with a key, and the event builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from events import http_event
from imagemint import wiring
from imagemint.domain import auth
from imagemint.domain.models import Account
from imagemint.settings import Settings
from imagemint.testing.inline import InlinePipeline
from imagemint.testing.memory import MemoryAccountStore, MemoryImageStore, MemoryJobStore
from imagemint.wiring import Deps, set_deps
from imagemint_dev import embedded


@pytest.fixture(autouse=True)
def embedded_modes() -> Iterator[None]:
    """Each test starts with the embedded archive and chain builders installed and ends with nothing built."""
    embedded.install()
    yield
    wiring.reset()


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
    wiring.reset()


@pytest.fixture
def account(deps: Deps) -> tuple[Account, str]:
    """(account, api_key) of an account with credits."""
    return auth.create_account(deps.accounts, deps.settings, name="Test artist", credits=1000)


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """The event builder (``tests/events.py:http_event``)."""
    return http_event
