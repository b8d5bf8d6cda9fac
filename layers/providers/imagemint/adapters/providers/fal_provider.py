"""The fal provider (``fal``): fal's queue API over HTTP, with one owner for retries.

One :meth:`FalProvider.generate` call is one queue request, driven by
:class:`FalQueue` (plain ``httpx``, one HTTP request per call, never a retry of
its own):

1. ``POST {queue}/{app}`` with the arguments (``Authorization: Key ...``,
   ``X-Fal-Request-Timeout``: fal drops a request that has not started by then)
   answers ``request_id`` and the ``status_url`` / ``response_url`` /
   ``cancel_url`` to use from then on (they must be on the queue's own origin:
   the key is sent there).
2. ``GET status_url`` is polled (interval growing from ``poll_interval_s`` to
   ``max_poll_interval_s``) until ``COMPLETED``. A failed poll (429, 5xx or a
   connection error) is retried at the next interval, up to three in a row: the
   request keeps running at fal whatever happens to one poll.
3. ``GET response_url`` fetches the result; every image URL in it is downloaded
   at once (fal's CDN URLs expire), ``data:`` URIs (``sync_mode``) are decoded in
   place.

Retries have one owner: this adapter
------------------------------------
fal-client retries 408 / 409 / 429 up to 10 times (~50 s of backoff) with no
public switch to turn that off, and the state machine's generate step used to
retry ``RateLimited`` again: a synchronous request could wait well past API
Gateway's 29 s. So fal-client is not used; the submission alone is retried here,
on 408 / 409 / 429 and on a connection that could not be opened, after the
answer's ``Retry-After`` (else 0.5 s, doubling, at most 4 s), at most
``_MAX_SUBMIT_ATTEMPTS`` times and only while the wait fits in ``retry_budget_s``
(default :data:`DEFAULT_RETRY_BUDGET_S`, never more than ``timeout_s``). A wait
that does not fit ends the call at once with :class:`~imagemint.errors.RateLimited`
carrying fal's ``Retry-After``: the client decides when to come back, nothing
below retries again (the state machine does not retry ``RateLimited``).

The whole queue wait is bounded by ``timeout_s`` (``settings.provider_timeout_s``):
the queue work runs in a daemon thread; at the deadline the request is
cancelled (``PUT cancel_url``) and :class:`~imagemint.errors.ProviderTimeout`
raised. Downloads then have the downloader's own timeout.

Errors: 422 / 400 → ``InvalidRequest`` (``param`` from the error's ``loc``),
422 of type ``content_policy_violation`` → ``ModerationBlocked``; 401 / 403 →
``ProviderError`` naming the key; 429 → ``RateLimited`` (``retry_after`` from
``Retry-After``, default 30); 5xx, connection errors and malformed answers →
``ProviderError``; a result whose images were all flagged by the safety checker
(``has_nsfw_concepts``) → ``ModerationBlocked`` (flagged images among good ones
are dropped, with a warning); a result without images → ``ProviderError``.

Where the requests go
---------------------
``queue_url`` (:data:`FAL_QUEUE_URL` by default; ``settings.fal_queue_url``,
``IMAGEMINT_FAL_QUEUE_URL``, through :meth:`FalProvider.from_settings`) is per
client: no process-wide state. Any scheme is taken (``http://127.0.0.1:PORT`` for
a local stub), so the running service reaches a stub by configuration alone.

The result images come from URLs the queue returned. The downloader
(:class:`HttpDownloader`) takes only ``https``, checked again at every redirect
hop; ``allow_http=True`` also takes plain ``http`` from loopback hosts (and from
nowhere else). ``from_settings`` turns that on only when the queue itself is a
plain-http loopback stub (``Settings.fal_queue_is_local``: local testing, see
:mod:`imagemint.settings`); the stub fixtures build their downloader with it.

Models (``call.provider_model``; anything else gets the generic mapping of
flux). Checked against fal's model pages and ``@fal-ai/client`` 1.10.1's
endpoint types on 2026-11-28:

- ``fal-ai/nano-banana-2``: ``prompt``, ``num_images`` (1-4), ``aspect_ratio``
  (auto, 21:9 ... 1:8), ``resolution`` (0.5K / 1K / 2K / 4K), ``output_format``
  (png / jpeg / webp), ``seed``. With references it runs
  ``fal-ai/nano-banana-2/edit`` (same inputs plus the required ``image_urls``;
  references as ``data:`` URIs).
- ``fal-ai/flux/schnell``: ``image_size`` as ``{width, height}``,
  ``num_images`` (1-4), ``seed``, ``output_format`` (jpeg / png).
- ``fal-ai/ideogram/v3``: ``image_size`` (fal's preset name for the aspect
  ratio at 1K where one exists, else ``{width, height}``), ``style`` (AUTO /
  GENERAL / REALISTIC / DESIGN), ``rendering_speed`` from ``quality``
  (low → TURBO, medium → BALANCED, high → QUALITY), ``seed``, references as
  style ``image_urls``; no output format.
- ``fal-ai/playground-v25``: ``image_size`` as ``{width, height}``,
  ``num_images``, ``seed`` and the output format as ``format`` (jpeg / png): this
  model does not read ``output_format``.

``call.extra`` fills in further arguments the mapping does not set. Masks are
refused (no fal model here takes one).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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
    "DEFAULT_RETRY_BUDGET_S",
    "FAL_QUEUE_URL",
    "Downloader",
    "FalHTTPError",
    "FalProvider",
    "FalQueue",
    "HttpDownloader",
    "QueueRequest",
    "build_arguments",
    "result_downloader",
]

Downloader = Callable[[str], bytes]

FAL_QUEUE_URL = "https://queue.fal.run"
DEFAULT_RETRY_AFTER = 30
# Time the submission may spend waiting out 429 / 408 / 409 answers, in all.
DEFAULT_RETRY_BUDGET_S = 10.0
_RETRY_STATUSES = (408, 409, 429)
_MAX_SUBMIT_ATTEMPTS = 5
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 4.0
_MAX_IMAGE_BYTES = 64 * 1024 * 1024
_POLL_FAILURES = 3
_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")


# --------------------------------------------------------------------------- the queue protocol


class FalHTTPError(Exception):
    """fal answered an HTTP error status (the response is kept for the error mapping)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code


@dataclass(frozen=True)
class QueueRequest:
    """One request in fal's queue: its id and the URLs the queue answered for it."""

    request_id: str
    status_url: str = field(repr=False)
    response_url: str = field(repr=False)
    cancel_url: str = field(repr=False)


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    return u.scheme, u.host, u.port


class FalQueue:
    """fal's queue API over ``httpx``: exactly one HTTP request per method call, no retries.

    ``transport`` is for tests (e.g. ``httpx.MockTransport``).
    """

    def __init__(
        self,
        key: str,
        *,
        queue_url: str = FAL_QUEUE_URL,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.queue_url = queue_url.rstrip("/")
        self._http = httpx.Client(
            headers={"Authorization": f"Key {key}", "User-Agent": "imagemint"},
            timeout=timeout,
            transport=transport,
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise FalHTTPError(response)
        return response

    def _own(self, url: Any) -> str:
        """A URL the queue answered, checked to be on the queue's origin (the key goes there)."""
        if not isinstance(url, str) or _origin(url) != _origin(self.queue_url):
            raise ProviderError("fal's queue answered a request URL outside the queue", provider="fal")
        return url

    def submit(
        self, app: str, arguments: dict[str, Any], *, start_timeout: float | None = None
    ) -> QueueRequest:
        headers = {"X-Fal-Request-Timeout": str(float(start_timeout))} if start_timeout else {}
        data = self._send("POST", f"{self.queue_url}/{app}", json=arguments, headers=headers).json()
        return QueueRequest(
            request_id=str(data["request_id"]),
            status_url=self._own(data["status_url"]),
            response_url=self._own(data["response_url"]),
            cancel_url=self._own(data["cancel_url"]),
        )

    def status(self, request: QueueRequest) -> str:
        """``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED`` (anything else is a malformed answer)."""
        status = self._send("GET", request.status_url).json()["status"]
        if status not in _STATUSES:
            raise ValueError(f"unknown queue status {status!r}")
        return str(status)

    def result(self, request: QueueRequest) -> Any:
        return self._send("GET", request.response_url).json()

    def cancel(self, request: QueueRequest) -> None:
        self._send("PUT", request.cancel_url)

    def close(self) -> None:
        self._http.close()


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class _Model:
    family: str
    formats: tuple[str, ...]  # output formats the model takes; () = never send output_format
    edit_app: str | None = None
    references: bool = False  # takes image_urls
    format_param: str = "output_format"  # the argument that carries the output format


_MODELS: dict[str, _Model] = {
    "fal-ai/nano-banana-2": _Model(
        "nano-banana", ("png", "jpeg", "webp"), edit_app="fal-ai/nano-banana-2/edit", references=True
    ),
    "fal-ai/nano-banana-2/edit": _Model(
        "nano-banana", ("png", "jpeg", "webp"), edit_app="fal-ai/nano-banana-2/edit", references=True
    ),
    "fal-ai/flux/schnell": _Model("flux", ("jpeg", "png")),
    "fal-ai/ideogram/v3": _Model("ideogram", (), references=True),
    "fal-ai/playground-v25": _Model("playground", ("jpeg", "png"), format_param="format"),
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
        args[model.format_param] = fmt
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
        value = headers.get("retry-after")
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


def _http_error(exc: FalHTTPError, app: str) -> ImagemintError:
    status = exc.status_code
    body = _body(exc.response)
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = [e for e in detail if isinstance(e, dict)] if isinstance(detail, list) else []
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or exc.response.headers.get(
        "x-fal-error-type"
    )
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
            f"fal is rate limiting requests to {app}", retry_after=_retry_after(exc.response.headers)
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
    if isinstance(exc, FalHTTPError):
        return _http_error(exc, app)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"fal timed out running {app}")
    if isinstance(exc, httpx.HTTPError):
        return ProviderError(f"Could not reach fal for {app} ({type(exc).__name__})", provider="fal")
    if isinstance(exc, ValueError | KeyError | TypeError | AttributeError):
        return ProviderError(f"fal answered malformed data for {app} ({type(exc).__name__})", provider="fal")
    return ProviderError(f"fal failed running {app} ({type(exc).__name__})", provider="fal")


def _retryable_submit(exc: Exception) -> bool:
    if isinstance(exc, FalHTTPError):
        return exc.status_code in _RETRY_STATUSES
    return isinstance(exc, httpx.ConnectError)  # never sent: retrying cannot queue it twice


def _backoff(attempt: int, exc: Exception) -> float:
    """Seconds to wait before submission ``attempt + 1``: fal's ``Retry-After``, else exponential."""
    if isinstance(exc, FalHTTPError):
        value = exc.response.headers.get("retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                return float(seconds_from(value, DEFAULT_RETRY_AFTER))
    return min(_FIRST_BACKOFF_S * 2 ** (attempt - 1), _MAX_BACKOFF_S)


# --------------------------------------------------------------------------- the provider


@dataclass
class _Run:
    """State shared between a generate call and the thread that drives its queue request."""

    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    request: QueueRequest | None = None
    result: Any = None
    error: BaseException | None = None


class FalProvider:
    """:class:`~imagemint.domain.ports.ImageProvider` for fal (see the module docstring)."""

    name = "fal"

    def __init__(
        self,
        client: FalQueue,
        *,
        timeout_s: float = 120.0,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 2.0,
        downloader: Downloader | None = None,
        max_image_bytes: int = _MAX_IMAGE_BYTES,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry_budget_s = max(0.0, min(retry_budget_s, timeout_s))
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

        The queue is ``settings.fal_queue_url`` (empty: fal's own); the result images
        are fetched by :func:`result_downloader` unless ``downloader`` is given.
        """
        secret = key or (settings.fal_key.get_secret_value() if settings.fal_key else None)
        if not secret:
            raise InternalError("No fal key is configured (IMAGEMINT_FAL_KEY or IMAGEMINT_FAL_KEY_PARAM)")
        client = FalQueue(
            secret, queue_url=settings.fal_queue_url or FAL_QUEUE_URL, timeout=settings.provider_timeout_s
        )
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
            self._cancel(run.request)
            details = {"request_id": run.request.request_id} if run.request is not None else {}
            raise ProviderTimeout(
                f"fal did not finish {app} within {self._timeout_s:g} s; the request was cancelled", **details
            )
        if run.error is not None:
            raise run.error
        return run.result, run.request.request_id if run.request is not None else None

    def _submit(self, app: str, arguments: dict[str, Any], run: _Run) -> QueueRequest:
        """Submit, waiting out 429 / 408 / 409 within the retry budget (the only retries of a submission)."""
        start_timeout = self._timeout_s if self._timeout_s > 1 else None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._client.submit(app, arguments, start_timeout=start_timeout)
            except (FalHTTPError, httpx.TransportError) as exc:
                if not _retryable_submit(exc):
                    raise
                delay = _backoff(attempt, exc)
                spent = time.monotonic() - started
                if attempt >= _MAX_SUBMIT_ATTEMPTS or spent + delay > self._retry_budget_s:
                    error = _map_error(exc, app)
                    if isinstance(error, RateLimited):
                        error = RateLimited(
                            f"fal is rate limiting requests to {app}: gave up after {attempt} "
                            f"attempt(s) in {spent:.1f} s (retry budget {self._retry_budget_s:g} s)",
                            retry_after=error.details["retry_after"],
                        )
                    raise error from exc
                if run.stop.wait(delay):  # the caller's deadline passed meanwhile
                    raise ProviderTimeout(f"fal did not accept {app} in time") from exc

    def _drive(self, app: str, arguments: dict[str, Any], run: _Run) -> None:
        try:
            request = self._submit(app, arguments, run)
            run.request = request
            interval = self._poll_interval_s
            failures = 0
            while not run.stop.is_set():
                try:
                    status = self._client.status(request)
                    failures = 0
                except FalHTTPError as exc:
                    failures += 1
                    if (exc.status_code < 500 and exc.status_code != 429) or failures >= _POLL_FAILURES:
                        raise
                    status = None
                except httpx.TransportError:
                    failures += 1
                    if failures >= _POLL_FAILURES:
                        raise
                    status = None
                if status == "COMPLETED":
                    run.result = self._client.result(request)
                    return
                run.stop.wait(interval)
                interval = min(interval * 1.5, self._max_poll_interval_s)
        except BaseException as exc:  # handed to the waiting caller
            run.error = exc
        finally:
            run.done.set()

    def _cancel(self, request: QueueRequest | None) -> None:
        """Cancel in the background and wait briefly: a slow cancel must not extend the deadline much."""
        if request is None:
            return
        finished = threading.Event()

        def cancel() -> None:
            try:
                self._client.cancel(request)
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
