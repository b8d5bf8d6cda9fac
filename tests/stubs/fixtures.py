"""Pytest fixtures for the provider stubs (import them from a conftest).

- ``openai_stub`` / ``fal_stub``: a started stub, stopped after the test. The
  fal fixture also points fal-client's queue URL at the stub and restores it.
- ``openai_client``: an ``openai.OpenAI`` aimed at the stub (no SDK retries,
  2 s timeout). ``openai_provider``: an :class:`OpenAIProvider` on that client.
- ``fal_sync_client``: a ``fal_client.SyncClient`` with a stub key.
  ``fal_provider``: a :class:`FalProvider` on it, with a 2 s budget, fast
  polling and a downloader that accepts the stub's ``http`` image URLs.
- ``fal_fast_retries``: fal-client retries 408 / 409 / 429 up to 10 times with
  exponential backoff (about 50 s in all); this sets its backoff base to zero so
  a test can drive the SDK through all of its retries quickly.

SDK imports happen inside the fixtures, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .fal_stub import FalStub
from .openai_stub import OpenAIStub

if TYPE_CHECKING:
    import fal_client
    import openai

    from imagemint.adapters.providers.fal_provider import FalProvider
    from imagemint.adapters.providers.openai_provider import OpenAIProvider

__all__ = [
    "fal_fast_retries",
    "fal_provider",
    "fal_stub",
    "fal_sync_client",
    "openai_client",
    "openai_provider",
    "openai_stub",
]

STUB_TIMEOUT_S = 2.0


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def openai_client(openai_stub: OpenAIStub) -> Iterator[openai.OpenAI]:
    import openai

    client = openai.OpenAI(
        api_key="sk-stub-test-key",
        base_url=openai_stub.base_url + "/v1",
        max_retries=0,
        timeout=STUB_TIMEOUT_S,
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def openai_provider(openai_client: openai.OpenAI) -> OpenAIProvider:
    from imagemint.adapters.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(openai_client)


@pytest.fixture
def fal_stub() -> Iterator[FalStub]:
    from imagemint.adapters.providers.fal_provider import set_queue_url

    with FalStub() as stub:
        previous = set_queue_url(stub.base_url)
        try:
            yield stub
        finally:
            set_queue_url(previous)


@pytest.fixture
def fal_sync_client(fal_stub: FalStub) -> fal_client.SyncClient:
    import fal_client

    return fal_client.SyncClient(key="stub-key-id:stub-key-secret", default_timeout=STUB_TIMEOUT_S)


@pytest.fixture
def fal_provider(fal_sync_client: fal_client.SyncClient) -> Iterator[FalProvider]:
    from imagemint.adapters.providers.fal_provider import FalProvider, HttpDownloader

    downloader = HttpDownloader(allow_http=True, timeout=STUB_TIMEOUT_S, max_bytes=8 * 1024 * 1024)
    try:
        yield FalProvider(
            fal_sync_client,
            timeout_s=STUB_TIMEOUT_S,
            poll_interval_s=0.01,
            max_poll_interval_s=0.05,
            downloader=downloader,
        )
    finally:
        downloader.close()


@pytest.fixture
def fal_fast_retries(monkeypatch: pytest.MonkeyPatch) -> Any:
    import fal_client.client

    monkeypatch.setattr(fal_client.client, "BASE_DELAY", 0.0)
    return fal_client.client.MAX_ATTEMPTS
