"""Image providers behind the :class:`imagemint.domain.ports.ImageProvider` port: OpenAI, fal, offline.

This package is the providers layer (with openai, httpx and pillow); only
the generate step attaches it. :func:`imagemint.wiring.provider_for` picks and
builds the adapter for a registry model. Where a provider is reached comes from
the settings (``openai_base_url``, ``fal_queue_url``): a local protocol stub is
configuration, not code.
"""
