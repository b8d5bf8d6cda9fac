"""The fal rows of the registry against fal's current model pages (read 2026-11-28).

Prices: nano-banana-2 (and its /edit) $0.08 an image at 1K, x0.75 at 0.5K, x1.5
at 2K, x2 at 4K; FLUX.1 [schnell] $0.003 per megapixel, rounded up (priced at
the resolution's square, the most it can cost). The ids and the inputs the
adapter sends are checked against the fal stub's schemas in
``tests/integration/test_fal_provider.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from imagemint.domain import registry
from imagemint.domain.models import GenerationRequest


def request(model: str, **fields: Any) -> GenerationRequest:
    return GenerationRequest(prompt="a lighthouse", model=model, dialect="cli", account_id="acct", **fields)


@pytest.mark.parametrize(
    ("model", "resolution", "usd"),
    [
        ("fal-ai/nano-banana-2", "0.5K", 0.06),
        ("fal-ai/nano-banana-2", "1K", 0.08),
        ("fal-ai/nano-banana-2", "2K", 0.12),
        ("fal-ai/nano-banana-2", "4K", 0.16),
        ("fal-ai/nano-banana-2/edit", "2K", 0.12),
        ("fal-ai/flux/schnell", "0.5K", 0.003),
        ("fal-ai/flux/schnell", "1K", 0.003),
        ("fal-ai/flux/schnell", "2K", 0.012),
        ("fal-ai/flux/schnell", "4K", 0.048),
    ],
)
def test_fal_prices_follow_fals_pricing(model: str, resolution: str, usd: float) -> None:
    resolved = registry.resolve(request(model, resolution=resolution), has_refs=model.endswith("/edit"))
    assert resolved.price_per_image == pytest.approx(usd)


def test_the_agentai_names_point_at_fal_apps_that_exist() -> None:
    fal = {name: registry.AGENTAI_MODELS[name] for name in ("Playground v3", "FLUX.1 [schnell]", "Ideogram")}
    assert fal == {
        # fal hosts no Playground v3: v2.5 is the Playground model it serves
        "Playground v3": "fal-ai/playground-v25",
        "FLUX.1 [schnell]": "fal-ai/flux/schnell",
        "Ideogram": "fal-ai/ideogram/v3",
    }
    for app in fal.values():
        assert registry.MODELS[app].provider == "fal" and registry.MODELS[app].provider_model == app
