"""Where fal's result images may be downloaded from, as the settings decide (no network: fakes at the seam).

The default is ``https`` only, at every redirect hop; plain ``http`` is taken
from loopback hosts only, and only when the queue itself is a plain-http
loopback stub (``IMAGEMINT_FAL_QUEUE_URL=http://127.0.0.1:...``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagemint import wiring
from imagemint.adapters.providers.fal_provider import (
    FalProvider,
    FalQueue,
    HttpDownloader,
    result_downloader,
)
from imagemint.domain.ports import ProviderCall
from imagemint.domain.registry import MODELS
from imagemint.errors import ProviderError
from imagemint.settings import Settings
from imagemint.wiring import provider_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _settings(**kw: Any) -> Settings:
    return Settings(jobs_table="jobs", accounts_table="accounts", bucket="bucket", **kw)


@pytest.fixture
def clean_wiring() -> Iterator[None]:
    yield
    wiring.reset()


def _served(seen: list[str], routes: dict[str, httpx.Response] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        for url, reply in (routes or {}).items():
            if str(request.url) == url:
                return reply
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    return httpx.MockTransport(handler)


# --------------------------------------------------------------------------- the settings' policy


def test_by_default_plain_http_is_refused_before_any_connection():
    download = result_downloader(_settings())
    assert download.allow_http is False
    for url in ("http://127.0.0.1:9/x.png", "http://v3.fal.media/files/x.png"):
        with pytest.raises(ProviderError, match="scheme 'http'"):
            download(url)  # the unit conftest fails any socket use: nothing was dialled


def test_an_https_queue_url_does_not_open_http():
    assert result_downloader(_settings(fal_queue_url="https://127.0.0.1:8443")).allow_http is False
    assert result_downloader(_settings(fal_queue_url="https://queue.example.test")).allow_http is False


def test_a_loopback_stub_queue_opens_http_from_loopback_only():
    download = result_downloader(_settings(fal_queue_url="http://127.0.0.1:18080"))
    assert download.allow_http is True
    assert download.refusal("http://127.0.0.1:18080/files/a.png") is None
    assert download.refusal("http://localhost:1/a.png") is None
    for url in ("http://10.0.0.5/a.png", "http://169.254.169.254/latest", "http://v3.fal.media/a.png"):
        with pytest.raises(ProviderError, match="only loopback hosts"):
            download(url)
    with pytest.raises(ProviderError, match="scheme 'file'"):
        download("file:///etc/passwd")


def test_download_timeout_follows_the_time_budget():
    assert result_downloader(_settings(provider_timeout_s=2)).timeout == 5.0
    assert result_downloader(_settings(provider_timeout_s=30)).timeout == 30.0
    assert result_downloader(_settings(provider_timeout_s=900)).timeout == 60.0


# --------------------------------------------------------------------------- redirects


def test_https_downloads_work_and_redirects_are_checked_at_every_hop():
    seen: list[str] = []
    routes = {
        "https://cdn.example.test/a.png": httpx.Response(
            302, headers={"Location": "https://storage.example.test/a.png"}
        ),
        "https://cdn.example.test/b.png": httpx.Response(
            302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
        ),
    }
    download = HttpDownloader(transport=_served(seen, routes))
    assert download("https://cdn.example.test/a.png") == PNG
    assert seen == ["https://cdn.example.test/a.png", "https://storage.example.test/a.png"]
    with pytest.raises(ProviderError, match="redirected to a refused URL"):
        download("https://cdn.example.test/b.png")
    assert seen[-1] == "https://cdn.example.test/b.png"  # the metadata address was never asked


def test_the_local_switch_does_not_let_a_redirect_leave_loopback():
    seen: list[str] = []
    routes = {
        "http://127.0.0.1:18080/files/a.png": httpx.Response(
            302, headers={"Location": "http://10.0.0.5/a.png"}
        )
    }
    download = HttpDownloader(allow_http=True, transport=_served(seen, routes))
    with pytest.raises(ProviderError, match="only loopback hosts"):
        download("http://127.0.0.1:18080/files/a.png")
    assert seen == ["http://127.0.0.1:18080/files/a.png"]


# --------------------------------------------------------------------------- from_settings / provider_for


def _call() -> ProviderCall:
    return ProviderCall(prompt="p", provider_model="fal-ai/flux/schnell", n=1, width=512, height=512)


def test_a_queue_client_sends_its_traffic_to_its_own_queue_url():
    """No process-wide state: each provider's queue client has its own URL and key."""
    seen: list[httpx.Request] = []

    def queue(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={"detail": "stop here"})

    client = FalQueue("k:s", queue_url="http://127.0.0.1:18080/", transport=httpx.MockTransport(queue))
    provider = FalProvider(client, timeout_s=2, downloader=lambda url: PNG)
    with pytest.raises(ProviderError, match="HTTP 500"):
        provider.generate(_call())
    [submit] = seen
    assert str(submit.url) == "http://127.0.0.1:18080/fal-ai/flux/schnell"
    assert submit.headers["authorization"] == "Key k:s"
    assert len(seen) == 1  # a 500 at submit is not retried


def test_provider_for_builds_a_fal_provider_from_the_settings(clean_wiring: None):
    settings = _settings(fal_key="k:s", fal_queue_url="http://127.0.0.1:18080")
    provider, warnings = provider_for(MODELS["fal-ai/flux/schnell"], settings)
    assert isinstance(provider, FalProvider) and warnings == []
