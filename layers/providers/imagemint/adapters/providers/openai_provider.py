"""The OpenAI provider (``openai``): the Images API through the official ``openai`` SDK.

- No references and no mask: ``images.generate`` (JSON, ``POST /v1/images/generations``).
- References (one or several) and / or a mask: ``images.edit`` (multipart,
  ``POST /v1/images/edits``); several images go as an array, the mask as its
  own file (PNG only).

Parameters are sent only when the call sets them. GPT image models
(``gpt-image-*``, ``chatgpt-image-*``, the only ones OpenAI still serves) get
``quality``, ``background``, ``output_format``, ``output_compression``,
(generations only) ``moderation``, and ``user`` / ``safety_identifier`` when
the client gave them; never ``response_format`` or ``style``: they always
answer base64 and reject both. A model the registry knows to be past its
shutdown date is refused here before anything is sent (the registry already
ran the request on its replacement; this is the last guard).

Every answer is base64, decoded here; the dimensions are read from the image
header (no Pillow). Usage ``input_tokens`` / ``output_tokens`` become
``prompt_tokens`` / ``completion_tokens`` (``input_tokens_details.image_tokens``
becomes ``input_image_tokens``, priced apart from text).

Errors (the SDK's exception classes and OpenAI's error ``code``; never the message text):

- 400 with code ``moderation_blocked`` or ``content_policy_violation`` → ``ModerationBlocked``;
  any other 400 / 422 → ``InvalidRequest`` with OpenAI's ``param``;
- 401 → ``ProviderError`` saying the API key was refused; 403 → ``ProviderError``
  saying the organisation must be verified for the model (or the project has no
  access), with OpenAI's own explanation;
- 429 → ``RateLimited`` with ``retry_after`` from ``retry-after-ms`` /
  ``Retry-After`` (default 30); 429 ``insufficient_quota`` (billing) → ``ProviderError``;
- ``APITimeoutError`` → ``ProviderTimeout``; connection errors, 5xx and other
  statuses → ``ProviderError``;
- an answer without images, with image URLs instead of base64, or with data
  that is not an image → ``ProviderError`` (never an empty success).

Retries: :meth:`OpenAIProvider.from_settings` builds the client with
``max_retries=0`` by default. The SDK would retry timeouts too, and one image
call already takes most of the time budget (``provider_timeout_s``); retrying
is the pipeline's job, which sees the domain errors (``RateLimited`` carries
``retry_after``) and can back off across invocations.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import openai

from imagemint.adapters.net.fetch import image_dimensions, sniff_media_type
from imagemint.adapters.providers.retry_after import seconds_from
from imagemint.domain.ports import InputImage, ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import (
    ImagemintError,
    InternalError,
    InvalidRequest,
    ModerationBlocked,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from imagemint.settings import Settings

__all__ = ["OpenAIProvider"]

DEFAULT_RETRY_AFTER = 30
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
# call.extra keys passed through to the SDK, per endpoint.
_EXTRA_GENERATE = ("user", "safety_identifier")
_EXTRA_EDIT = ("user", "safety_identifier", "input_fidelity")


def _file(image: InputImage, stem: str) -> tuple[str, bytes, str]:
    return (f"{stem}.{_EXTENSIONS.get(image.media_type, 'png')}", image.data, image.media_type)


def _retry_after(headers: Any) -> int:
    try:
        ms = headers.get("retry-after-ms")
        seconds = headers.get("retry-after")
    except AttributeError:
        return DEFAULT_RETRY_AFTER
    if ms:
        try:
            return max(1, int(float(ms) / 1000 + 0.999))
        except ValueError:
            pass
    return seconds_from(seconds, DEFAULT_RETRY_AFTER)


def _short(text: Any, limit: int = 400) -> str:
    s = str(text or "").strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


class OpenAIProvider:
    """:class:`~imagemint.domain.ports.ImageProvider` for OpenAI's Images API (see the module docstring)."""

    name = "openai"

    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client

    @property
    def client(self) -> openai.OpenAI:
        return self._client

    @classmethod
    def from_settings(
        cls, settings: Settings, *, api_key: str | None = None, max_retries: int = 0
    ) -> OpenAIProvider:
        key = api_key or (settings.openai_api_key.get_secret_value() if settings.openai_api_key else None)
        if not key:
            raise InternalError(
                "No OpenAI API key is configured (IMAGEMINT_OPENAI_API_KEY or IMAGEMINT_OPENAI_API_KEY_PARAM)"
            )
        total = settings.provider_timeout_s
        client = openai.OpenAI(
            api_key=key,
            base_url=settings.openai_base_url or None,
            timeout=openai.Timeout(total, connect=min(10.0, total)),
            max_retries=max_retries,
        )
        return cls(client)

    # ------------------------------------------------------------------ request

    def _params(self, call: ProviderCall, *, edit: bool) -> tuple[dict[str, Any], list[str]]:
        model = call.provider_model
        warnings: list[str] = []
        params: dict[str, Any] = {"model": model, "prompt": call.prompt, "n": call.n}
        size = call.size or (f"{call.width}x{call.height}" if call.width and call.height else None)
        if size:
            params["size"] = size
        for key in ("quality", "background", "output_format", "output_compression"):
            value = getattr(call, key)
            if value is not None:
                params[key] = value
        if call.style is not None:
            warnings.append(f"style is not a parameter of {model}; it was not sent")
        if call.moderation is not None:
            if edit:
                warnings.append("moderation is not a parameter of OpenAI image edits; it was not sent")
            else:
                params["moderation"] = call.moderation
        for key in _EXTRA_EDIT if edit else _EXTRA_GENERATE:
            if key in call.extra:
                params[key] = call.extra[key]
        return params, warnings

    def generate(self, call: ProviderCall) -> ProviderResult:
        from imagemint.domain.registry import MODELS

        model = call.provider_model
        spec = MODELS.get(model)
        if spec is not None and spec.status() == "shutdown":
            raise InvalidRequest(f"{model} was shut down on {spec.shutdown}; it is never sent", param="model")
        edit = bool(call.references) or call.mask is not None
        params, warnings = self._params(call, edit=edit)
        try:
            if edit:
                if not call.references:
                    raise InvalidRequest("An edit needs at least one image besides the mask", param="image")
                if call.mask is not None and call.mask.media_type != "image/png":
                    raise InvalidRequest("The mask must be a PNG image", param="mask")
                files = [_file(img, f"image-{i + 1}") for i, img in enumerate(call.references)]
                image: Any = files[0] if len(files) == 1 else files
                if call.mask is not None:
                    params["mask"] = _file(call.mask, "mask")
                response = self._client.images.edit(image=image, **params)
            else:
                response = self._client.images.generate(**params)
        except ImagemintError:
            raise
        except openai.APITimeoutError:
            raise ProviderTimeout(f"OpenAI did not answer {model} in time") from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"Could not reach OpenAI ({type(exc).__name__})", provider="openai") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model) from None
        except (openai.OpenAIError, ValueError, TypeError) as exc:
            raise ProviderError(
                f"OpenAI answered malformed data for {model} ({type(exc).__name__})", provider="openai"
            ) from None
        return self._to_result(call, response, warnings)

    # ------------------------------------------------------------------ errors

    def _status_error(self, exc: openai.APIStatusError, model: str) -> ImagemintError:
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code") or exc.code
        message = _short(body.get("message") or "")
        status = exc.status_code
        param = body.get("param") or exc.param
        if status in (400, 422):
            if code in _MODERATION_CODES:
                return ModerationBlocked(
                    f"OpenAI's safety system refused the request: {message}", param="prompt"
                )
            return InvalidRequest(f"OpenAI rejected the request: {message or 'invalid request'}", param=param)
        if status == 401:
            return ProviderError(
                f"OpenAI refused the API key (HTTP 401{', ' + str(code) if code else ''}): check the "
                "configured key (IMAGEMINT_OPENAI_API_KEY / IMAGEMINT_OPENAI_API_KEY_PARAM)",
                provider="openai",
                status=status,
            )
        if status == 403:
            return ProviderError(
                f"OpenAI refused access to {model} (HTTP 403): the OpenAI organisation must be verified to "
                f"use this model, or the key's project has no access to it. OpenAI said: {message}",
                provider="openai",
                status=status,
            )
        if status == 429:
            if code == "insufficient_quota":
                return ProviderError(
                    f"The OpenAI account has no quota left (HTTP 429 insufficient_quota): {message}",
                    provider="openai",
                    status=status,
                )
            return RateLimited(
                f"OpenAI is rate limiting requests to {model}", retry_after=_retry_after(exc.response.headers)
            )
        if status == 404:
            return ProviderError(
                f"OpenAI does not know {model} (HTTP 404): {message}", provider="openai", status=status
            )
        if status == 408 or status == 504:
            return ProviderTimeout(f"OpenAI timed out running {model} (HTTP {status})")
        return ProviderError(
            f"OpenAI failed running {model} (HTTP {status}): {message or 'no details'}",
            provider="openai",
            status=status,
        )

    # ------------------------------------------------------------------ response

    def _to_result(self, call: ProviderCall, response: Any, warnings: list[str]) -> ProviderResult:
        model = call.provider_model
        data = getattr(response, "data", None)
        if not isinstance(data, list) or not data:
            raise ProviderError(f"OpenAI returned no image for {model}", provider="openai")
        images: list[ProviderImage] = []
        for item in data:
            b64 = getattr(item, "b64_json", None)
            if not isinstance(b64, str) or not b64:
                what = "an image URL instead of base64" if getattr(item, "url", None) else "no image data"
                raise ProviderError(f"OpenAI answered {model} with {what}", provider="openai")
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError(
                    f"OpenAI answered {model} with invalid base64", provider="openai"
                ) from None
            media_type = sniff_media_type(raw)
            if media_type is None:
                raise ProviderError(
                    f"OpenAI answered {model} with data that is not an image", provider="openai"
                )
            width, height = image_dimensions(raw) or (call.width, call.height)
            revised = getattr(item, "revised_prompt", None)
            images.append(
                ProviderImage(
                    data=raw,
                    media_type=media_type,
                    width=width,
                    height=height,
                    revised_prompt=revised if isinstance(revised, str) else None,
                )
            )
        if len(images) < call.n:
            warnings.append(f"OpenAI returned {len(images)} of {call.n} images")

        prompt_tokens = completion_tokens = image_tokens = 0
        usage = getattr(response, "usage", None)
        if usage is not None:
            prompt_tokens = int(getattr(usage, "input_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "output_tokens", 0) or 0)
            details = getattr(usage, "input_tokens_details", None)
            image_tokens = min(prompt_tokens, int(getattr(details, "image_tokens", 0) or 0))
        metadata: dict[str, Any] = {"provider": "openai"}
        for key in ("created", "size", "quality", "background", "output_format"):
            value = getattr(response, key, None)
            if value is not None:
                metadata[key] = value
        return ProviderResult(
            images=images,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            warnings=warnings,
            metadata=metadata,
            input_image_tokens=image_tokens,
        )
