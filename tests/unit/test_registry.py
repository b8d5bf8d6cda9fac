"""The model registry: geometry, aliases, per-model validation, prices and edit variants."""

from __future__ import annotations

from typing import Any

import pytest

from imagemint.domain import registry
from imagemint.domain.models import GenerationRequest
from imagemint.errors import InvalidRequest

RESOLUTION_PX = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
AGENTAI_RATIOS = ("9:16", "1:1", "4:3", "16:9")


def request(model: str, **fields: Any) -> GenerationRequest:
    return GenerationRequest(prompt="a lighthouse", model=model, dialect="cli", account_id="acct", **fields)


# --------------------------------------------------------------------------- geometry


def test_the_fal_aspect_ratios_are_the_seeds_fifteen():
    assert len(registry.ASPECT_RATIOS_FAL) == 15 and len(set(registry.ASPECT_RATIOS_FAL)) == 15
    assert registry.RESOLUTIONS == RESOLUTION_PX


@pytest.mark.parametrize("resolution", list(RESOLUTION_PX))
@pytest.mark.parametrize("aspect_ratio", registry.ASPECT_RATIOS_FAL)
def test_ratio_dims(aspect_ratio, resolution):
    width, height = registry.ratio_dims(aspect_ratio, resolution)
    assert max(width, height) == RESOLUTION_PX[resolution]
    assert width % 8 == 0 and height % 8 == 0
    if aspect_ratio == "auto":
        assert width == height
    else:
        w, h = (int(x) for x in aspect_ratio.split(":"))
        assert abs((width / height) / (w / h) - 1) <= 0.02


def test_ratio_dims_defaults_to_a_1k_square():
    assert registry.ratio_dims(None, None) == (1024, 1024)


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [("9:16", "1024x1792"), ("1:1", "1024x1024"), ("4:3", "1792x1024"), ("16:9", "1792x1024")],
)
def test_nearest_size_for_agentai_ratios_on_dall_e_3(aspect_ratio, size):
    spec = registry.MODELS["dall-e-3"]
    assert registry.nearest_size(spec.sizes, aspect_ratio) == size
    resolved = registry.resolve(request("DALL-E 3", aspect_ratio=aspect_ratio), aliases={})
    assert (resolved.spec.name, resolved.provider_size, resolved.size) == ("dall-e-3", size, size)


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [("9:16", "1024x1536"), ("1:1", "1024x1024"), ("4:3", "1536x1024"), ("16:9", "1536x1024")],
)
def test_agentai_ratios_on_aliased_dall_e_3_run_at_the_nearest_gpt_image_size(aspect_ratio, size):
    resolved = registry.resolve(request("DALL-E 3", aspect_ratio=aspect_ratio))
    assert (resolved.spec.name, resolved.provider_size, resolved.size) == ("gpt-image-1", size, size)


def test_nearest_size_is_measured_in_log_space():
    """4:3 is nearer to 7:4 (1792x1024) than to 1:1, and 3:4 mirrors it."""
    sizes = registry.MODELS["dall-e-3"].sizes
    assert registry.nearest_size(sizes, "4:3") == "1792x1024"
    assert registry.nearest_size(sizes, "3:4") == "1024x1792"


def test_nearest_size_never_picks_auto():
    assert registry.nearest_size(registry.MODELS["gpt-image-1"].sizes, "1:1") == "1024x1024"


# --------------------------------------------------------------------------- aliases


def test_dall_e_3_is_aliased_to_gpt_image_1_with_a_warning():
    resolved = registry.resolve(request("dall-e-3", size="1792x1024"))
    assert resolved.requested == "dall-e-3" and resolved.spec.name == "gpt-image-1"
    assert resolved.provider_size == "1536x1024" and (resolved.width, resolved.height) == (1536, 1024)
    (warning,) = resolved.warnings
    assert "dall-e-3" in warning and "gpt-image-1" in warning


def test_dall_e_2_is_aliased_too():
    resolved = registry.resolve(request("dall-e-2", size="256x256"))
    assert resolved.spec.name == "gpt-image-1" and resolved.provider_size == "1024x1024"


def test_no_alias_runs_the_requested_model_without_a_warning():
    resolved = registry.resolve(request("dall-e-2", size="256x256"), aliases={})
    assert resolved.spec.name == "dall-e-2" and resolved.size == "256x256" and resolved.warnings == ()


@pytest.mark.parametrize(("quality", "sent"), [("hd", "high"), ("standard", "medium"), (None, None)])
def test_dall_e_3_quality_is_translated_for_gpt_image_1(quality, sent):
    req = request("dall-e-3", quality=quality, style="vivid")
    options = registry.call_options(req, registry.resolve(req))
    assert options == {"quality": sent, "style": None, "background": None}


def test_call_options_keep_dall_e_3_options_when_it_runs_itself():
    req = request("dall-e-3", quality="hd", style="natural")
    options = registry.call_options(req, registry.resolve(req, aliases={}))
    assert options == {"quality": "hd", "style": "natural", "background": None}


def test_call_options_pass_gpt_image_background():
    req = request("gpt-image-1", quality="low", background="transparent")
    options = registry.call_options(req, registry.resolve(req))
    assert options == {"quality": "low", "style": None, "background": "transparent"}


# --------------------------------------------------------------------------- validation

INVALID = [
    (request("no-such-model"), "model"),
    (request("dall-e-2", n=11), "n"),
    (request("dall-e-3", n=2), "n"),
    (request("gpt-image-1", n=0), "n"),
    (request("fal-ai/nano-banana-2", n=5), "n"),
    (request("dall-e-2", size="1792x1024"), "size"),
    (request("dall-e-3", size="256x256"), "size"),
    (request("gpt-image-1", size="256x256"), "size"),
    (request("fal-ai/flux/schnell", size="1024x1024"), "size"),
    (request("dall-e-3", quality="low"), "quality"),
    (request("gpt-image-1", quality="hd"), "quality"),
    (request("fal-ai/nano-banana-2", quality="high"), "quality"),
    (request("dall-e-2", style="vivid"), "style"),
    (request("dall-e-3", style="cartoon"), "style"),
    (request("gpt-image-1", style="vivid"), "style"),
    (request("dall-e-3", background="transparent"), "background"),
    (request("gpt-image-1", background="glitter"), "background"),
    (request("dall-e-2", output_format="jpeg"), "output_format"),
    (request("fal-ai/ideogram/v3", output_format="webp"), "output_format"),
    (request("fal-ai/nano-banana-2", aspect_ratio="7:3"), "aspect_ratio"),
    (request("fal-ai/nano-banana-2", resolution="8K"), "resolution"),
]


@pytest.mark.parametrize(("req", "param"), INVALID, ids=[f"{r.model}-{p}" for r, p in INVALID])
def test_invalid_requests_name_the_param(req, param):
    with pytest.raises(InvalidRequest) as err:
        registry.resolve(req)
    assert err.value.param == param and err.value.status == 400
    if param != "model":
        assert req.model in err.value.message or param in err.value.message


def test_edits_on_a_model_without_edits_name_the_image_param():
    with pytest.raises(InvalidRequest) as err:
        registry.resolve(request("fal-ai/flux/schnell"), has_refs=True)
    assert err.value.param == "image"
    with pytest.raises(InvalidRequest) as err:
        registry.resolve(request("dall-e-3"), has_refs=True)
    assert err.value.param == "image"


def test_validation_is_against_the_requested_model_not_the_alias():
    """gpt-image-1 takes 1536x1024, but a client asking dall-e-2 for it gets dall-e-2's 400."""
    with pytest.raises(InvalidRequest) as err:
        registry.resolve(request("dall-e-2", size="1536x1024"))
    assert err.value.param == "size"


def test_lookup_knows_agentai_names():
    assert registry.lookup("FLUX.1 [schnell]").name == "fal-ai/flux/schnell"
    assert registry.lookup("Playground v3").name == "fal-ai/playground-v25"
    assert registry.lookup("Ideogram").name == "fal-ai/ideogram/v3"


# --------------------------------------------------------------------------- prices

GPT_PRICES = [
    ("1024x1024", "low", 0.011),
    ("1024x1024", "medium", 0.042),
    ("1024x1024", "high", 0.167),
    ("1536x1024", "low", 0.016),
    ("1536x1024", "medium", 0.063),
    ("1536x1024", "high", 0.25),
    ("1024x1536", "low", 0.016),
    ("1024x1536", "medium", 0.063),
    ("1024x1536", "high", 0.25),
]


@pytest.mark.parametrize(("size", "quality", "price"), GPT_PRICES)
def test_gpt_image_1_price_per_image(size, quality, price):
    resolved = registry.resolve(request("gpt-image-1", size=size, quality=quality, n=3))
    assert resolved.price_per_image == pytest.approx(price)


def test_gpt_image_1_price_without_a_quality_is_the_default():
    assert registry.resolve(request("gpt-image-1")).price_per_image == pytest.approx(0.042)


def test_an_aliased_model_is_priced_as_what_ran():
    """dall-e-3 hd at 1792x1024 runs as gpt-image-1 high at 1536x1024 and costs that."""
    resolved = registry.resolve(request("dall-e-3", size="1792x1024", quality="hd"))
    assert resolved.price_per_image == pytest.approx(0.25)


def test_dall_e_prices_when_they_run_themselves():
    assert registry.resolve(request("dall-e-2", size="256x256"), aliases={}).price_per_image == 0.016
    assert registry.resolve(request("dall-e-3", quality="hd"), aliases={}).price_per_image == 0.08
    wide = request("dall-e-3", size="1792x1024", quality="hd")
    assert registry.resolve(wide, aliases={}).price_per_image == 0.12


def test_fal_prices_by_resolution():
    assert registry.resolve(request("fal-ai/nano-banana-2", resolution="4K")).price_per_image == 0.16
    assert registry.resolve(request("fal-ai/nano-banana-2", resolution="1K")).price_per_image == 0.08
    assert registry.resolve(request("fal-ai/flux/schnell")).price_per_image == 0.003


# --------------------------------------------------------------------------- edit variants


def test_nano_banana_2_with_references_runs_its_edit_variant():
    req = request("fal-ai/nano-banana-2", aspect_ratio="16:9")
    plain = registry.resolve(req)
    edit = registry.resolve(req, has_refs=True)
    assert plain.spec.name == "fal-ai/nano-banana-2"
    assert edit.spec.name == "fal-ai/nano-banana-2/edit" == edit.spec.provider_model
    assert (edit.width, edit.height) == (plain.width, plain.height) == (1024, 576)
    assert edit.warnings == ()


def test_gpt_image_1_edits_run_gpt_image_1():
    assert registry.resolve(request("gpt-image-1"), has_refs=True).spec.name == "gpt-image-1"


def test_every_edit_model_is_a_registered_model_that_takes_edits():
    for spec in registry.MODELS.values():
        if spec.edit_model:
            assert registry.MODELS[spec.edit_model].edits
        assert spec.max_per_call <= spec.max_n or spec.max_n == 1
