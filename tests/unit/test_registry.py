"""The model registry: geometry, aliases, per-model validation, prices and edit variants."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from imagemint.domain import registry
from imagemint.domain.models import GenerationRequest
from imagemint.errors import InvalidRequest

RESOLUTION_PX = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
AGENTAI_RATIOS = ("9:16", "1:1", "4:3", "16:9")
TODAY = date(2026, 11, 28)


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
    assert registry.nearest_size(registry.MODELS["dall-e-3"].sizes, aspect_ratio) == size


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [("9:16", "864x1536"), ("1:1", "1024x1024"), ("4:3", "1536x1152"), ("16:9", "1536x864")],
)
def test_agentai_ratios_run_at_the_exact_gpt_image_2_size_of_that_ratio(aspect_ratio, size):
    """agent.ai's DALL-E 3 (retired) runs on the default model at exactly the ratio asked for."""
    resolved = registry.resolve(request("DALL-E 3", aspect_ratio=aspect_ratio), on=TODAY)
    assert (resolved.spec.name, resolved.provider_size, resolved.size) == ("gpt-image-2", size, size)
    w, h = (int(x) for x in size.split("x"))
    rw, rh = (int(x) for x in aspect_ratio.split(":"))
    assert w * rh == h * rw and w % 16 == 0 and h % 16 == 0


@pytest.mark.parametrize("resolution", list(RESOLUTION_PX))
@pytest.mark.parametrize("aspect_ratio", [r for r in registry.ASPECT_RATIOS_FAL if r != "auto"])
def test_every_ratio_within_1_3_to_3_1_has_an_exact_free_size_at_every_resolution(aspect_ratio, resolution):
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if max(w, h) > 3 * min(w, h):
        with pytest.raises(InvalidRequest) as err:
            registry.ratio_size(aspect_ratio, resolution)
        assert err.value.param == "aspect_ratio"
        return
    width, height = registry.ratio_size(aspect_ratio, resolution)
    assert width * h == height * w  # exactly the ratio
    assert registry.FREE_SIZES.problem(width, height) is None


def test_nearest_size_is_measured_in_log_space():
    """4:3 is nearer to 7:4 (1792x1024) than to 1:1, and 3:4 mirrors it."""
    sizes = registry.MODELS["dall-e-3"].sizes
    assert registry.nearest_size(sizes, "4:3") == "1792x1024"
    assert registry.nearest_size(sizes, "3:4") == "1024x1792"


def test_nearest_size_never_picks_auto():
    assert registry.nearest_size(registry.MODELS["gpt-image-2.6-flare"].sizes, "1:1") == "1024x1024"


# --------------------------------------------------------------------------- lifecycle and aliases


def test_dall_e_3_runs_on_the_default_model_with_a_warning_naming_both():
    resolved = registry.resolve(request("dall-e-3", size="1792x1024"), on=TODAY)
    assert resolved.requested == "dall-e-3" and resolved.spec.name == "gpt-image-2"
    assert resolved.provider_size == "1792x1024"  # a size gpt-image-2 takes as it is
    (warning,) = resolved.warnings
    assert "dall-e-3" in warning and "gpt-image-2" in warning and "2026-05-12" in warning


def test_dall_e_2_small_sizes_are_mapped_with_a_warning():
    resolved = registry.resolve(request("dall-e-2", size="256x256"), on=TODAY)
    assert resolved.spec.name == "gpt-image-2" and resolved.provider_size == "1024x1024"
    assert any("256x256" in w and "1024x1024" in w for w in resolved.warnings)


def test_the_default_model_is_configurable():
    resolved = registry.resolve(request("dall-e-2"), default_model="gpt-image-2.5-flare", on=TODAY)
    assert resolved.spec.name == "gpt-image-2.5-flare"


def test_gpt_image_1_runs_on_its_announced_replacement():
    resolved = registry.resolve(request("gpt-image-1", quality="low"), on=TODAY)
    assert resolved.spec.name == "gpt-image-2.5-flare" and resolved.quality == "low"
    assert any("gpt-image-1" in w and "gpt-image-2.5-flare" in w for w in resolved.warnings)


@pytest.mark.parametrize("model", ["gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"])
def test_deprecated_models_run_until_their_date_then_their_replacement(model):
    before = registry.resolve(request(model), on=date(2026, 11, 30))
    assert before.spec.name == model
    assert any("2026-12-01" in w and "gpt-image-2.6-flare" in w for w in before.warnings)
    after = registry.resolve(request(model), on=date(2026, 12, 1))
    assert after.spec.name == "gpt-image-2.6-flare"
    assert any(model in w and "gpt-image-2.6-flare" in w for w in after.warnings)


def test_the_date_decides_not_a_list_of_dead_names():
    """gpt-image-1 ran the day before its shutdown; nothing names it dead but its date."""
    assert registry.resolve(request("gpt-image-1"), on=date(2026, 10, 22)).spec.name == "gpt-image-1"
    assert registry.resolve(request("gpt-image-1"), on=date(2026, 10, 23)).spec.name != "gpt-image-1"


def test_an_alias_to_a_shut_down_model_still_never_runs_it():
    resolved = registry.resolve(request("dall-e-2"), aliases={"dall-e-2": "dall-e-3"}, on=TODAY)
    assert resolved.spec.name == "gpt-image-2"
    assert any("dall-e-3" in w and "gpt-image-2" in w for w in resolved.warnings)


def test_a_live_alias_runs_the_alias_and_says_so():
    resolved = registry.resolve(request("dall-e-2"), aliases={"dall-e-2": "fal-ai/flux/schnell"}, on=TODAY)
    assert resolved.spec.name == "fal-ai/flux/schnell"
    assert any("dall-e-2" in w and "fal-ai/flux/schnell" in w for w in resolved.warnings)


def test_no_default_or_agentai_name_resolves_to_a_shut_down_model_today():
    """Fails on the day a default (the settings' default, a dialect's, an agent.ai name) is shut down."""
    from imagemint.settings import DEFAULT_MODEL

    today = registry.today()
    assert registry.MODELS[DEFAULT_MODEL].status(today) != "shutdown", DEFAULT_MODEL
    names = [
        DEFAULT_MODEL,
        *registry.DIALECT_DEFAULTS.values(),
        *registry.AGENTAI_MODELS,
        "fal-ai/nano-banana-2",
    ]
    for name in names:
        runs = registry.live_model(name, default_model=DEFAULT_MODEL, on=today)
        assert runs.status(today) != "shutdown", (name, runs.name)
        assert registry.live_model(name, default_model=DEFAULT_MODEL, on=today) is runs


def test_every_replacement_is_a_registered_model_and_no_chain_loops():
    for spec in registry.MODELS.values():
        if spec.replacement:
            assert spec.replacement in registry.MODELS, spec.name
        runs = registry.live_model(spec.name, default_model="gpt-image-2", on=date(2030, 1, 1))
        assert runs.status(date(2030, 1, 1)) != "shutdown"


@pytest.mark.parametrize(("quality", "sent"), [("hd", "high"), ("standard", "medium"), (None, None)])
def test_dall_e_3_quality_is_mapped_and_style_never_sent(quality, sent):
    req = request("dall-e-3", quality=quality, style="vivid")
    resolved = registry.resolve(req, on=TODAY)
    assert registry.call_options(req, resolved) == {"quality": sent, "style": None, "background": None}
    assert any("style 'vivid'" in w for w in resolved.warnings)
    assert (quality is None) or any(f"'{quality}'" in w and f"'{sent}'" in w for w in resolved.warnings)


def test_call_options_pass_gpt_image_background():
    req = request("gpt-image-2", quality="low", background="transparent")
    options = registry.call_options(req, registry.resolve(req, on=TODAY))
    assert options == {"quality": "low", "style": None, "background": "transparent"}


def test_xhigh_on_2_5_is_sent_as_it_is():
    resolved = registry.resolve(request("gpt-image-2.5-flare", quality="xhigh"), on=TODAY)
    assert (resolved.spec.name, resolved.quality, resolved.warnings) == ("gpt-image-2.5-flare", "xhigh", ())


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
    # gpt-image-2 / 2.5 sizes: any WxH, both sides divisible by 16, 1:3 to 3:1, at most 3840x2160
    (request("gpt-image-2", size="1530x860"), "size"),
    (request("gpt-image-2", size="3072x1008"), "size"),  # wider than 3:1
    (request("gpt-image-2", size="4096x2304"), "size"),  # above 3840x2160
    (request("gpt-image-2", size="2880x2896"), "size"),  # more pixels than 3840x2160
    (request("gpt-image-2", size="768x768"), "size"),  # fewer than 655,360 pixels
    (request("gpt-image-2", size="1536x"), "size"),
    (request("gpt-image-2.5-flare", size="wide"), "size"),
    (request("gpt-image-2.6-flare", size="1536x864"), "size"),  # the SDK gives 2.6 the standard sizes only
    (request("gpt-image-2", quality="xhigh"), "quality"),  # xhigh / max: 2.5 only
    (request("gpt-image-2.6-sunburst", quality="max"), "quality"),
    (request("gpt-image-2.5-sunburst", quality="ultra"), "quality"),
    (request("gpt-image-2", n=11), "n"),
    (request("gpt-image-2", style="natural"), "style"),
    (request("gpt-image-2", background="transparent", output_format="jpeg"), "background"),
    (request("gpt-image-2", output_compression=50), "output_compression"),  # png takes none
    (request("gpt-image-2", aspect_ratio="4:1"), "aspect_ratio"),
]


@pytest.mark.parametrize(("req", "param"), INVALID, ids=[f"{r.model}-{p}" for r, p in INVALID])
def test_invalid_requests_name_the_param(req, param):
    with pytest.raises(InvalidRequest) as err:
        registry.resolve(req, on=TODAY)
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


@pytest.mark.parametrize(
    "size", ["1536x864", "864x1536", "3840x2160", "2160x3840", "2048x2048", "1024x640", "2880x960", "auto"]
)
@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-flare"])
def test_free_sizes_pass_as_they_are(model, size):
    resolved = registry.resolve(request(model, size=size), on=TODAY)
    assert resolved.provider_size == size and resolved.spec.name == model


def test_sizes_above_2560x1440_are_flagged_experimental():
    assert any(
        "experimental" in w for w in registry.resolve(request("gpt-image-2", size="3840x2160")).warnings
    )
    assert registry.resolve(request("gpt-image-2", size="2560x1440"), on=TODAY).warnings == ()


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

# OpenAI's prices per image (the pricing page / cost calculator): gpt-image-2 at $30 per 1M image
# output tokens (1024x1024: 196 / 1756 / 7024 tokens; 1536x1024: 158 / 1372 / 5488), the 2.5 and
# 2.6 models at the same token prices, the older models from their per-image tables.
PRICES = [
    ("gpt-image-2", "1024x1024", "low", 0.00588),
    ("gpt-image-2", "1024x1024", "medium", 0.05268),
    ("gpt-image-2", "1024x1024", "high", 0.21072),
    ("gpt-image-2", "1536x1024", "low", 0.00474),
    ("gpt-image-2", "1536x1024", "medium", 0.04116),
    ("gpt-image-2", "1536x1024", "high", 0.16464),
    ("gpt-image-2", "1024x1536", "high", 0.16464),
    ("gpt-image-2", "1536x864", "medium", 0.03234),
    ("gpt-image-2", "3840x2160", "high", 0.40026),
    ("gpt-image-2", "1024x1024", None, 0.21072),  # "auto" is quoted at its highest, trued down later
    ("gpt-image-2-2026-04-21", "1024x1024", "medium", 0.05268),
    ("gpt-image-2.5-flare", "1024x1024", "medium", 0.05268),
    ("gpt-image-2.5-sunburst", "1536x1024", "high", 0.16464),
    ("gpt-image-2.5-flare", "1024x1024", "xhigh", 0.47412),  # an assumption (1.5x high's factor)
    ("gpt-image-2.5-sunburst", "1024x1024", "max", 0.84288),  # an assumption (2x high's factor)
    ("gpt-image-2.6-flare", "1024x1024", "low", 0.00588),
    ("gpt-image-2.6-sunburst", "1024x1536", "medium", 0.04116),
    ("gpt-image-1.5", "1024x1024", "low", 0.009),
    ("gpt-image-1.5", "1024x1024", "medium", 0.034),
    ("gpt-image-1.5", "1024x1024", "high", 0.133),
    ("gpt-image-1.5", "1536x1024", "medium", 0.05),
    ("gpt-image-1.5", "1024x1536", "high", 0.2),
    ("chatgpt-image-latest", "1024x1024", "medium", 0.034),
    ("gpt-image-1-mini", "1024x1024", "low", 0.005),
    ("gpt-image-1-mini", "1024x1024", "medium", 0.011),
    ("gpt-image-1-mini", "1024x1024", "high", 0.036),
    ("gpt-image-1-mini", "1536x1024", "low", 0.006),
    ("gpt-image-1-mini", "1024x1536", "medium", 0.015),
    ("gpt-image-1-mini", "1536x1024", "high", 0.052),
]


@pytest.mark.parametrize(("model", "size", "quality", "price"), PRICES)
def test_price_per_image(model, size, quality, price):
    resolved = registry.resolve(request(model, size=size, quality=quality, n=3), on=TODAY)
    assert resolved.spec.name == model
    assert resolved.price_per_image == pytest.approx(price, abs=1e-9)


def test_every_live_openai_model_has_a_price_table_row():
    live = {
        m.name for m in registry.MODELS.values() if m.provider == "openai" and m.status(TODAY) != "shutdown"
    }
    assert live <= {row[0] for row in PRICES} | {
        "gpt-image-2.5-sunburst-2026-09-08",
        "gpt-image-2.5-flare-2026-09-08",
        "gpt-image-1.5-2025-12-16",
    }


def test_token_usage_gives_the_exact_cost():
    """gpt-image-2: $5 text / $8 image input, $30 image output per 1M tokens."""
    resolved = registry.resolve(request("gpt-image-2", quality="medium"), on=TODAY)
    cost = registry.cost_usd(resolved, 2, text_tokens=100, image_tokens=1000, output_tokens=3512)
    assert cost == pytest.approx((100 * 5 + 1000 * 8 + 3512 * 30) / 1e6)
    # without usage (the offline provider): the per-image price
    assert registry.cost_usd(resolved, 2, 0, 0, 0) == pytest.approx(2 * 0.05268)


def test_a_retired_model_is_priced_as_what_ran():
    """dall-e-3 hd at 1792x1024 runs as gpt-image-2 high at 1792x1024 and costs that."""
    resolved = registry.resolve(request("dall-e-3", size="1792x1024", quality="hd"), on=TODAY)
    assert resolved.price_per_image == pytest.approx(5063 * 30 / 1e6)  # OpenAI's calculator: 5063 tokens


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


def test_gpt_image_edits_run_the_model_itself():
    assert registry.resolve(request("gpt-image-2"), has_refs=True).spec.name == "gpt-image-2"
    assert (
        registry.resolve(request("gpt-image-1"), has_refs=True, on=TODAY).spec.name == "gpt-image-2.5-flare"
    )


def test_the_catalogue_lists_every_model_with_its_lifecycle():
    entries = {e["id"]: e for e in registry.catalogue(default_model="gpt-image-2", on=TODAY)}
    assert (
        entries["gpt-image-1"]["status"] == "shutdown"
        and entries["gpt-image-1"]["shutdown_date"] == "2026-10-23"
    )
    assert entries["gpt-image-1"]["runs_as"] == "gpt-image-2.5-flare"
    assert entries["gpt-image-1.5"]["status"] == "deprecated"
    assert entries["gpt-image-2"]["status"] == "active" and entries["gpt-image-2"]["shutdown_date"] is None
    assert entries["gpt-image-2.5-flare"]["capabilities"]["qualities"] == [
        "low",
        "medium",
        "high",
        "xhigh",
        "max",
        "auto",
    ]
    assert entries["DALL-E 3"]["runs_as"] == "gpt-image-2"
    assert "fal-ai/nano-banana-2/edit" not in entries


def test_every_edit_model_is_a_registered_model_that_takes_edits():
    for spec in registry.MODELS.values():
        if spec.edit_model:
            assert registry.MODELS[spec.edit_model].edits
        assert spec.max_per_call <= spec.max_n or spec.max_n == 1
