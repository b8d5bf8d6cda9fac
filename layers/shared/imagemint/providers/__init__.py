"""Image providers behind the :class:`imagemint.ports.ImageProvider` port.

``provider_for`` picks the adapter for a registry model. Provider SDKs are
imported only here, only when a key for that provider is configured, so a
function that never calls OpenAI or fal never imports their SDKs. Where the
provider is reached comes from the settings too (``openai_base_url``,
``fal_queue_url``): a local protocol stub is configuration, not code.
"""

from __future__ import annotations

import threading
from typing import Any

from imagemint.ports import ImageProvider
from imagemint.registry import ModelSpec
from imagemint.settings import Settings

_cache: dict[str, Any] = {}
_overrides: dict[str, ImageProvider] = {}
_lock = threading.Lock()


def register_provider(name: str, provider: ImageProvider | None) -> None:
    """Run every model of provider ``name`` ("openai", "fal") on ``provider`` (tests); None removes it."""
    with _lock:
        if provider is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = provider


def _secret(value: Any, param: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if param:
        from aws_lambda_powertools.utilities import parameters

        try:
            if param.startswith("secret:"):
                return str(parameters.get_secret(param.removeprefix("secret:"), max_age=300))
            return str(parameters.get_parameter(param, decrypt=True, max_age=300))
        except parameters.exceptions.GetParameterError:
            # Not configured: the model runs offline and every response says so.
            from imagemint.observability import logger

            logger.warning("provider key parameter not found", extra={"parameter": param})
            return None
    return None


def _cached(name: str, build: Any) -> Any:
    with _lock:
        if name not in _cache:
            _cache[name] = build()
        return _cache[name]


def provider_for(spec: ModelSpec, settings: Settings) -> tuple[ImageProvider, list[str]]:
    """The provider that runs ``spec``, and warnings to pass on to the client."""
    if spec.provider in _overrides:
        return _overrides[spec.provider], []
    if spec.provider == "openai":
        key = _secret(settings.openai_api_key, settings.openai_api_key_param)
        if key:
            from imagemint.providers.openai_provider import OpenAIProvider

            return _cached("openai", lambda: OpenAIProvider.from_settings(settings, api_key=key)), []
    elif spec.provider == "fal":
        key = _secret(settings.fal_key, settings.fal_key_param)
        if key:
            from imagemint.providers.fal_provider import FalProvider

            return _cached("fal", lambda: FalProvider.from_settings(settings, key=key)), []
    from imagemint.providers.local import LocalProvider

    warning = (
        f"No {spec.provider} key is configured: model '{spec.name}' ran on the offline 'local' provider."
    )
    return _cached("local", LocalProvider), [warning]


def reset_providers() -> None:
    """Forget every provider, and undo what building them changed in the process.

    A fal provider built from settings pointed fal-client's process-wide queue URL
    (``IMAGEMINT_FAL_QUEUE_URL``); it goes back to fal's own queue.
    """
    with _lock:
        built_fal = "fal" in _cache
        _cache.clear()
        _overrides.clear()
    if built_fal:
        from imagemint.providers.fal_provider import set_queue_url

        set_queue_url(None)
