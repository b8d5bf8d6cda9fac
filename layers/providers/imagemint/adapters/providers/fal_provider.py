"""The fal provider (``fal``): fal's queue API through fal-client 1.0.3's ``SyncClient``.

One :meth:`FalProvider.generate` call is one queue request:

1. ``client.submit(app, arguments)`` posts the arguments (``POST {queue}/{app}``)
   and gets back ``request_id`` and the ``status_url`` / ``response_url`` /
   ``cancel_url`` to use from then on.
2. ``handle.status()`` is polled (interval growing from ``poll_interval_s`` to
   ``max_poll_interval_s``) until ``COMPLETED``. A failed poll (5xx or a
   connection error) is retried at the next interval, up to three in a row: the
   request keeps running at fal whatever happens to one poll.
3. ``handle.get()`` fetches the result; every image URL in it is downloaded at
   once (fal's CDN URLs expire), ``data:`` URIs (``sync_mode``) are decoded in
   place.

The queue wait is bounded by ``timeout_s`` (``settings.provider_timeout_s``):
the queue work runs in a daemon thread; at the deadline the request is
cancelled (``PUT cancel_url``) and :class:`~imagemint.errors.ProviderTimeout`
raised. Downloads then have the downloader's own timeout. The submission also
carries ``X-Fal-Request-Timeout`` with the same value, so fal drops a request
that has not started by then.

Errors: 422 / 400 → ``InvalidRequest`` (``param`` from the error's ``loc``),
422 of type ``content_policy_violation`` → ``ModerationBlocked``; 401 / 403 →
``ProviderError`` naming the key; 429 → ``RateLimited`` (``retry_after`` from
``Retry-After``, default 30; note fal-client itself retries 408 / 409 / 429
up to 10 times with exponential backoff before giving up); 5xx, connection
errors and malformed answers → ``ProviderError``; a result whose images were all
flagged by the safety checker (``has_nsfw_concepts``) → ``ModerationBlocked``
(flagged images among good ones are dropped, with a warning); a result without
images → ``ProviderError``.

Where the requests go
---------------------
fal-client 1.0.3 builds the *submit* URL from a module-level format,
``fal_client.client.QUEUE_URL_FORMAT = f"https://{FAL_QUEUE_RUN_HOST}/"``,
where ``FAL_QUEUE_RUN_HOST`` is read from the environment once, when
``fal_client.auth`` is imported (default ``queue.fal.run``). Everything after
the submit (status, result, cancel) uses the URLs the queue answered with, so
only that one format decides where the traffic goes. :func:`set_queue_url`
replaces it for the whole process, with any scheme (``http://127.0.0.1:PORT``
for a local stub: no TLS, no certificate set-up, no import-order games with
environment variables), and returns the previous value so a test fixture can
restore it (``tests/stubs/fixtures.py`` does). For real fal nothing needs to
be set. :meth:`FalProvider.from_settings` applies ``settings.fal_queue_url``
(``IMAGEMINT_FAL_QUEUE_URL``; empty: fal's own queue), so the running service
reaches a stub by configuration alone.

The result images come from URLs the queue returned. The downloader
(:class:`HttpDownloader`) takes only ``https``, checked again at every redirect
hop; ``allow_http=True`` also takes plain ``http`` from loopback hosts (and from
nowhere else). ``from_settings`` turns that on only when the queue itself is a
plain-http loopback stub (``Settings.fal_queue_is_local``: local testing, see
:mod:`imagemint.settings`); the stub fixtures build their downloader with it.

Models (``call.provider_model``; anything else gets the generic mapping of
flux / playground):

- ``fal-ai/nano-banana-2``: ``prompt``, ``num_images``, ``aspect_ratio``,
  ``resolution``, ``output_format`` (png / jpeg / webp), ``seed``. With
  references it runs ``fal-ai/nano-banana-2/edit`` with ``image_urls``
  (references as ``data:`` URIs: ``upload_file`` talks to fixed fal hosts).
- ``fal-ai/flux/schnell``: ``image_size`` as ``{width, height}``,
  ``num_images``, ``seed``, ``output_format`` (jpeg / png).
- ``fal-ai/ideogram/v3``: ``image_size`` (fal's preset name for the aspect
  ratio at 1K where one exists, else ``{width, height}``), ``style`` (AUTO /
  GENERAL / REALISTIC / DESIGN), ``rendering_speed`` from ``quality``
  (low → TURBO, medium → BALANCED, high → QUALITY), ``seed``, references as
  style ``image_urls``.
- ``fal-ai/playground-v25``: ``image_size`` as ``{width, height}``,
  ``num_images``, ``seed``, ``output_format`` (jpeg / png).

``call.extra`` fills in further arguments the mapping does not set. Masks are
refused (no fal model here takes one).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fal_client
import fal_client.client as _fal
import httpx

from imagemint.adapters.net.fetch import decode_base64_image, image_dimensions, sniff_media_type
from imagemint.adapters.providers.retry_after import seconds_from
from imagemint.domain.ports import InputImage, ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import (
    ImagemintError,
    InputRefused,
    InternalError,
    InvalidRequest,
    ModerationBlocked,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from imagemint.settings import Settings, is_loopback_host

__all__ = [
    "Downloader",
    "FalProvider",
    "HttpDownloader",
    "build_arguments",
    "result_downloader",
    "set_queue_url",
]

Downloader = Callable[[str], bytes]

_FAL_QUEUE_URL_FORMAT = _fal.QUEUE_URL_FORMAT
DEFAULT_RETRY_AFTER = 30
_MAX_IMAGE_BYTES = 64 * 1024 * 1024
_POLL_FAILURES = 3


def set_queue_url(url: str | None) -> str:
    """Send fal-client's queue submissions to ``url`` (None: fal's own); returns the previous base.

    Process-wide: fal-client keeps the submit URL in a module-level format.
    """
    previous = _fal.QUEUE_URL_FORMAT
    _fal.QUEUE_URL_FORMAT = _FAL_QUEUE_URL_FORMAT if url is None else url.rstrip("/") + "/"
    return previous


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class _Model:
    family: str
    formats: tuple[str, ...]  # output formats the model takes; () = never send output_format
    edit_app: str | None = None
    references: bool = False  # takes image_urls


_MODELS: dict[str, _Model] = {
    "fal-ai/nano-banana-2": _Model(
        "nano-banana", ("png", "jpeg", "webp"), edit_app="fal-ai/nano-banana-2/edit", references=True
    ),
    "fal-ai/nano-banana-2/edit": _Model(
        "nano-banana", ("png", "jpeg", "webp"), edit_app="fal-ai/nano-banana-2/edit", references=True
    ),
    "fal-ai/flux/schnell": _Model("flux", ("jpeg", "png")),
    "fal-ai/ideogram/v3": _Model("ideogram", (), references=True),
    "fal-ai/playground-v25": _Model("playground", ("jpeg", "png")),
}
_GENERIC = _Model("generic", ("jpeg", "png"))

# fal's image_size presets (1K class) by aspect ratio.
_SIZE_PRESETS = {
    "1:1": "square_hd",
    "4:3": "landscape_4_3",
    "3:4": "portrait_4_3",
    "16:9": "landscape_16_9",
    "9:16": "portrait_16_9",
}
_RENDERING_SPEED = {
    "low": "TURBO",
    "medium": "BALANCED",
    "high": "QUALITY",
    "turbo": "TURBO",
    "balanced": "BALANCED",
    "quality": "QUALITY",
}


def _data_uri(image: InputImage) -> str:
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def build_arguments(call: ProviderCall) -> tuple[str, dict[str, Any]]:
    """The fal app to run and its arguments for ``call`` (see the module docstring)."""
    app = call.provider_model
    model = _MODELS.get(app, _GENERIC)
    if call.mask is not None:
        raise InvalidRequest(f"{app} does not take a mask", param="mask")
    if call.references and not model.references:
        raise InvalidRequest(f"{app} does not take reference images", param="image")
    fmt = call.output_format
    if fmt and model.formats and fmt not in model.formats:
        raise InvalidRequest(
            f"output_format '{fmt}' is not supported by {app}; expected one of {', '.join(model.formats)}",
            param="output_format",
        )
    args: dict[str, Any] = {"prompt": call.prompt, "num_images": call.n}

    if model.family == "nano-banana":
        if call.references:
            app = model.edit_app or app
        elif app == model.edit_app:
            raise InvalidRequest(f"{app} needs at least one reference image", param="image")
        if call.aspect_ratio:
            args["aspect_ratio"] = call.aspect_ratio
        if call.resolution:
            args["resolution"] = call.resolution
    elif model.family == "ideogram":
        preset = _SIZE_PRESETS.get(call.aspect_ratio or "")
        if preset and call.resolution in (None, "1K"):
            args["image_size"] = preset
        elif call.aspect_ratio != "auto" or call.resolution not in (None, "1K"):
            args["image_size"] = {"width": call.width, "height": call.height}
        if call.style:
            args["style"] = call.style.upper()
        if call.quality:
            speed = _RENDERING_SPEED.get(call.quality.lower())
            if speed is None:
                raise InvalidRequest(f"quality '{call.quality}' is not supported by {app}", param="quality")
            args["rendering_speed"] = speed
    else:  # flux, playground and anything else fal runs with an image_size
        args["image_size"] = {"width": call.width, "height": call.height}

    if fmt and model.formats:
        args["output_format"] = fmt
    if call.seed is not None:
        args["seed"] = call.seed
    if call.references:
        args["image_urls"] = [_data_uri(ref) for ref in call.references]
    for key, value in call.extra.items():
        args.setdefault(key, value)
    return app, args


# --------------------------------------------------------------------------- downloads


class HttpDownloader:
    """GET a result image from fal's CDN with a size cap (a provider URL, not user input).

    ``https`` only, at the first URL and at every redirect hop. ``allow_http`` also
    takes plain ``http`` from loopback hosts, never from any other host (local
    protocol stubs; see :func:`result_downloader`). ``transport`` is for tests
    (e.g. ``httpx.MockTransport``).
    """

    def __init__(
        self,
        *,
        max_bytes: int = _MAX_IMAGE_BYTES,
        timeout: float = 30.0,
        allow_http: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_http = allow_http
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=True,
                    transport=self._transport,
                    event_hooks={"request": [self._check_redirect]},
                )
            return self._client

    def refusal(self, url: str | httpx.URL) -> str | None:
        """Why ``url`` must not be downloaded (a short reason), or None."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return "a malformed URL"
        scheme = parsed.scheme.lower()
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            return f"scheme '{scheme}'"
        if not parsed.host:
            return "no host"
        if scheme == "http" and not is_loopback_host(parsed.host):
            return f"plain http to '{parsed.host}' (only loopback hosts may be reached over http)"
        return None

    def _check_redirect(self, request: httpx.Request) -> None:
        # Every hop passes here; the first one was already checked by __call__.
        reason = self.refusal(request.url)
        if reason is not None:
            raise ProviderError(f"A fal result image redirected to a refused URL: {reason}")

    def __call__(self, url: str) -> bytes:
        reason = self.refusal(url)
        if reason is not None:
            raise ProviderError(f"fal returned an image URL with {reason}")
        try:
            with self._http().stream("GET", url) as response:
                if response.status_code != 200:
                    raise ProviderError(
                        f"Downloading a fal result image failed with HTTP {response.status_code}"
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise ProviderError(f"A fal result image is larger than {self.max_bytes} bytes")
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise ProviderError(f"A fal result image is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException:
            raise ProviderTimeout("Downloading a fal result image timed out") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"Downloading a fal result image failed ({type(exc).__name__})") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _download_timeout(timeout_s: float) -> float:
    return min(60.0, max(timeout_s, 5.0))


def result_downloader(settings: Settings, *, max_bytes: int = _MAX_IMAGE_BYTES) -> HttpDownloader:
    """The downloader of result images the settings allow (what :meth:`FalProvider.from_settings` uses).

    ``https`` only; plain ``http`` from loopback hosts only when the queue itself is
    a plain-http loopback stub (``settings.fal_queue_is_local``, local testing).
    """
    return HttpDownloader(
        max_bytes=max_bytes,
        timeout=_download_timeout(settings.provider_timeout_s),
        allow_http=settings.fal_queue_is_local,
    )


# --------------------------------------------------------------------------- errors


def _retry_after(headers: Any) -> int:
    value = None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except AttributeError:
        pass
    return seconds_from(value, DEFAULT_RETRY_AFTER)


def _body(response: httpx.Response | None) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _short(text: Any, limit: int = 300) -> str:
    s = str(text).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _http_error(exc: fal_client.FalClientHTTPError, app: str) -> ImagemintError:
    status = exc.status_code
    body = _body(exc.response)
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = [e for e in detail if isinstance(e, dict)] if isinstance(detail, list) else []
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or exc.error_type
    if errors:
        message = "; ".join(_short(e.get("msg") or e.get("type") or "invalid input", 200) for e in errors)
    elif isinstance(detail, str) and detail:
        message = _short(detail)
    else:
        message = f"HTTP {status}"
    param = None
    for err in errors:
        loc = err.get("loc")
        if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body":
            param = str(loc[1])
            break

    if status in (401, 403):
        return ProviderError(
            f"fal refused the API key (HTTP {status}) for {app}: check the configured fal key "
            "(IMAGEMINT_FAL_KEY / IMAGEMINT_FAL_KEY_PARAM) and its access to this model",
            provider="fal",
            status=status,
        )
    if status == 429:
        return RateLimited(
            f"fal is rate limiting requests to {app}", retry_after=_retry_after(exc.response_headers)
        )
    if (
        any(e.get("type") == "content_policy_violation" for e in errors)
        or error_type == "content_policy_violation"
    ):
        return ModerationBlocked(f"fal's content checker refused the request: {message}", param=param)
    if status in (400, 422):
        return InvalidRequest(f"fal rejected the request to {app}: {message}", param=param)
    if status == 404:
        return ProviderError(f"fal does not know the model {app} (HTTP 404)", provider="fal", status=status)
    if status == 504 or error_type in ("request_timeout", "startup_timeout"):
        return ProviderTimeout(f"fal timed out running {app}: {message}")
    return ProviderError(
        f"fal failed running {app} (HTTP {status}): {message}", provider="fal", status=status
    )


def _map_error(exc: BaseException, app: str) -> ImagemintError:
    if isinstance(exc, ImagemintError):
        return exc
    if isinstance(exc, fal_client.FalClientHTTPError):
        return _http_error(exc, app)
    if isinstance(exc, fal_client.FalClientTimeoutError | httpx.TimeoutException):
        return ProviderTimeout(f"fal timed out running {app}")
    if isinstance(exc, httpx.HTTPError):
        return ProviderError(f"Could not reach fal for {app} ({type(exc).__name__})", provider="fal")
    if isinstance(exc, ValueError | KeyError | TypeError | AttributeError):
        return ProviderError(f"fal answered malformed data for {app} ({type(exc).__name__})", provider="fal")
    return ProviderError(f"fal failed running {app} ({type(exc).__name__})", provider="fal")


# --------------------------------------------------------------------------- the provider


@dataclass
class _Run:
    """State shared between a generate call and the thread that drives its queue request."""

    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    handle: fal_client.SyncRequestHandle | None = None
    result: Any = None
    error: BaseException | None = None


class FalProvider:
    """:class:`~imagemint.domain.ports.ImageProvider` for fal (see the module docstring)."""

    name = "fal"

    def __init__(
        self,
        client: fal_client.SyncClient,
        *,
        timeout_s: float = 120.0,
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 2.0,
        downloader: Downloader | None = None,
        max_image_bytes: int = _MAX_IMAGE_BYTES,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._max_poll_interval_s = max(max_poll_interval_s, poll_interval_s)
        self._max_image_bytes = max_image_bytes
        self._download: Downloader = downloader or HttpDownloader(
            max_bytes=max_image_bytes, timeout=_download_timeout(timeout_s)
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, key: str | None = None, downloader: Downloader | None = None
    ) -> FalProvider:
        """The provider ``settings`` describe: key, time budget, queue URL and download policy.

        Points fal-client's process-wide queue URL at ``settings.fal_queue_url``
        (empty: fal's own); the result images are fetched by
        :func:`result_downloader` unless ``downloader`` is given.
        """
        secret = key or (settings.fal_key.get_secret_value() if settings.fal_key else None)
        if not secret:
            raise InternalError("No fal key is configured (IMAGEMINT_FAL_KEY or IMAGEMINT_FAL_KEY_PARAM)")
        set_queue_url(settings.fal_queue_url or None)
        client = fal_client.SyncClient(key=secret, default_timeout=settings.provider_timeout_s)
        return cls(
            client,
            timeout_s=settings.provider_timeout_s,
            downloader=downloader or result_downloader(settings),
        )

    # ------------------------------------------------------------------ generate

    def generate(self, call: ProviderCall) -> ProviderResult:
        app, arguments = build_arguments(call)
        try:
            result, request_id = self._run(app, arguments)
            return self._to_result(call, app, result, request_id)
        except ImagemintError:
            raise
        except Exception as exc:  # every failure leaves as a domain error
            raise _map_error(exc, app) from exc

    def _run(self, app: str, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        run = _Run()
        worker = threading.Thread(
            target=self._drive, args=(app, arguments, run), name="imagemint-fal", daemon=True
        )
        worker.start()
        if not run.done.wait(self._timeout_s):
            run.stop.set()
            self._cancel(run.handle)
            details = {"request_id": run.handle.request_id} if run.handle is not None else {}
            raise ProviderTimeout(
                f"fal did not finish {app} within {self._timeout_s:g} s; the request was cancelled", **details
            )
        if run.error is not None:
            raise run.error
        return run.result, run.handle.request_id if run.handle is not None else None

    def _drive(self, app: str, arguments: dict[str, Any], run: _Run) -> None:
        try:
            start_timeout = self._timeout_s if self._timeout_s > 1 else None
            handle = self._client.submit(app, arguments, start_timeout=start_timeout)
            run.handle = handle
            interval = self._poll_interval_s
            failures = 0
            while not run.stop.is_set():
                try:
                    status = handle.status()
                    failures = 0
                except fal_client.FalClientHTTPError as exc:
                    failures += 1
                    if exc.status_code < 500 or failures >= _POLL_FAILURES:
                        raise
                    status = None
                except httpx.TransportError:
                    failures += 1
                    if failures >= _POLL_FAILURES:
                        raise
                    status = None
                if isinstance(status, fal_client.Completed):
                    run.result = handle.get(interval=self._poll_interval_s)
                    return
                run.stop.wait(interval)
                interval = min(interval * 1.5, self._max_poll_interval_s)
        except BaseException as exc:  # handed to the waiting caller
            run.error = exc
        finally:
            run.done.set()

    def _cancel(self, handle: fal_client.SyncRequestHandle | None) -> None:
        """Cancel in the background and wait briefly: a slow cancel must not extend the deadline much."""
        if handle is None:
            return
        finished = threading.Event()

        def cancel() -> None:
            try:
                handle.cancel()
            except Exception:  # noqa: S110 (best effort; the timeout is what the caller gets)
                pass
            finally:
                finished.set()

        threading.Thread(target=cancel, name="imagemint-fal-cancel", daemon=True).start()
        finished.wait(min(2.0, max(self._timeout_s / 4, 0.2)))

    # ------------------------------------------------------------------ results

    def _to_result(self, call: ProviderCall, app: str, result: Any, request_id: str | None) -> ProviderResult:
        if not isinstance(result, dict):
            raise ProviderError(f"fal answered {app} with something other than a JSON object", provider="fal")
        entries = result.get("images")
        if entries is None and isinstance(result.get("image"), dict):
            entries = [result["image"]]
        if not isinstance(entries, list):
            raise ProviderError(f"fal answered {app} without an images list", provider="fal")
        flags = result.get("has_nsfw_concepts")
        warnings: list[str] = []
        keep = list(range(len(entries)))
        if isinstance(flags, list) and len(flags) == len(entries) and entries:
            flagged = [i for i, f in enumerate(flags) if f is True]
            if len(flagged) == len(entries):
                raise ModerationBlocked(
                    f"fal's safety checker flagged every image {app} made for this prompt", param="prompt"
                )
            if flagged:
                keep = [i for i in keep if i not in flagged]
                warnings.append(f"{len(flagged)} image(s) flagged by fal's safety checker were removed")
        items = [
            entries[i]
            for i in keep
            if isinstance(entries[i], dict) and isinstance(entries[i].get("url"), str)
        ]
        if not items:
            raise ProviderError(f"fal returned no image for {app}", provider="fal")

        datas = self._fetch_all([item["url"] for item in items])
        images: list[ProviderImage] = []
        for item, data in zip(items, datas, strict=True):
            media_type = sniff_media_type(data)
            if media_type is None:
                raise ProviderError(f"fal returned a file that is not an image for {app}", provider="fal")
            dims = image_dimensions(data)
            if dims is None:
                w, h = item.get("width"), item.get("height")
                dims = (w, h) if isinstance(w, int) and isinstance(h, int) else (call.width, call.height)
            images.append(ProviderImage(data=data, media_type=media_type, width=dims[0], height=dims[1]))
        if len(images) < call.n:
            warnings.append(f"fal returned {len(images)} of {call.n} images")

        metadata: dict[str, Any] = {"provider": "fal"}
        if request_id:
            metadata["request_id"] = request_id
        for key in ("seed", "description"):
            if result.get(key) not in (None, ""):
                metadata[key] = result[key]
        return ProviderResult(images=images, model=app, warnings=warnings, metadata=metadata)

    def _fetch_one(self, url: str) -> bytes:
        if url[:5].lower() == "data:":
            try:
                return decode_base64_image(url, name="fal result", max_bytes=self._max_image_bytes).data
            except InputRefused as exc:
                raise ProviderError(
                    f"fal returned an unusable data URI: {exc.message}", provider="fal"
                ) from None
        return self._download(url)

    def _fetch_all(self, urls: list[str]) -> list[bytes]:
        if len(urls) == 1:
            return [self._fetch_one(urls[0])]
        with ThreadPoolExecutor(max_workers=min(8, len(urls)), thread_name_prefix="imagemint-fal-dl") as pool:
            return list(pool.map(self._fetch_one, urls))
