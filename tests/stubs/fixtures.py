"""Pytest fixtures for the provider stubs (import them from a conftest).

- ``openai_stub`` / ``fal_stub``: a started stub, stopped after the test.
- ``openai_client``: an ``openai.OpenAI`` aimed at the stub (no SDK retries,
  2 s timeout). ``openai_provider``: an :class:`OpenAIProvider` on that client.
- ``fal_queue_client``: a :class:`FalQueue` on the stub with a stub key.
  ``fal_provider``: a :class:`FalProvider` on it, with a 2 s budget (retry
  budget included), fast polling and a downloader that accepts the stub's
  ``http`` image URLs.

SDK imports happen inside the fixtures, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .fal_stub import FalStub
from .openai_stub import OpenAIStub

if TYPE_CHECKING:
    import openai

    from imagemint.adapters.providers.fal_provider import FalProvider, FalQueue
    from imagemint.adapters.providers.openai_provider import OpenAIProvider

__all__ = [
    "fal_provider",
    "fal_queue_client",
    "fal_stub",
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
    with FalStub() as stub:
        yield stub


@pytest.fixture
def fal_queue_client(fal_stub: FalStub) -> Iterator[FalQueue]:
    from imagemint.adapters.providers.fal_provider import FalQueue

    client = FalQueue("stub-key-id:stub-key-secret", queue_url=fal_stub.base_url, timeout=STUB_TIMEOUT_S)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fal_provider(fal_queue_client: FalQueue) -> Iterator[FalProvider]:
    from imagemint.adapters.providers.fal_provider import FalProvider, HttpDownloader

    downloader = HttpDownloader(allow_http=True, timeout=STUB_TIMEOUT_S, max_bytes=8 * 1024 * 1024)
    try:
        yield FalProvider(
            fal_queue_client,
            timeout_s=STUB_TIMEOUT_S,
            poll_interval_s=0.01,
            max_poll_interval_s=0.05,
            downloader=downloader,
        )
    finally:
        downloader.close()
