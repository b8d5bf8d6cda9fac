"""The model registry: one table for the whole system.

Every model name a dialect accepts maps to a :class:`ModelSpec`: the provider
that runs it, the provider's own model id, what it can do (sizes or aspect
ratios and resolutions, qualities, images per call, edits, output formats),
its price, and its lifecycle (status, shutdown date, replacement). Requests
are validated against the spec of the model they name (400 in the dialect's
shape, naming the parameter), and geometry is mapped between dialects here
(size <-> aspect ratio <-> resolution <-> pixels).

Lifecycle (OpenAI's deprecations page and the pinned ``openai`` SDK's
``types/image_model.py``): a model whose shutdown date has come (compared with
today's date at request time) never runs; the request runs on its replacement
(followed until a live model) and the warnings name both. Retired models
without a replacement of their own (DALL·E: "use a GPT image model") run on
the configured default model (``IMAGEMINT_DEFAULT_MODEL``). A model with an
announced shutdown still runs, with a warning naming the date.

Aliases (``IMAGEMINT_MODEL_ALIASES``, e.g. ``dall-e-2=gpt-image-2.5-flare``)
are configuration on top: the request is validated against the model it names
and runs on the alias target. Parameters the running model does not take
(DALL·E ``style``, ``standard`` / ``hd``, DALL·E sizes) are mapped onto it with
a warning and never sent. With no provider key configured every model runs on
the offline ``local`` provider with a warning.

Prices: GPT image models are priced by tokens (USD per 1M text / image input
and image output tokens); the per-image price used to quote credits before a
call is an estimate of the image output tokens (OpenAI's size and quality
formula for the GPT Image 2 family, OpenAI's per-image table for the older
models), and :func:`cost_usd` gives the exact cost from a response's usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from math import gcd, log
from typing import Literal

from imagemint.domain.models import GenerationRequest
from imagemint.errors import InvalidRequest
from imagemint.settings import DEFAULT_MODEL

ASPECT_RATIOS_FAL = (
    "auto",
    "21:9",
    "16:9",
    "3:2",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "2:3",
    "9:16",
    "4:1",
    "1:4",
    "8:1",
    "1:8",
)
RESOLUTIONS = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
MAX_PROMPT = {"openai": 32000, "fal": 10000, "local": 32000}

Status = Literal["active", "deprecated", "shutdown"]


def today() -> date:
    """Today's date (UTC): what lifecycle decisions compare shutdown dates with."""
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class FreeSizes:
    """Any ``WxH`` within these limits (the SDK's ``size`` docstring for gpt-image-2 and 2.5).

    Both sides divisible by ``step``, aspect ratio between 1:3 and 3:1, at most
    3840x2160 (``max_pixels``, ``max_edge``) and at least ``min_pixels`` (OpenAI's
    "pixel and edge limits"); above 2560x1440 OpenAI calls the output experimental.
    """

    step: int = 16
    max_ratio: float = 3.0
    max_edge: int = 3840
    min_pixels: int = 655_360
    max_pixels: int = 3840 * 2160
    experimental_above: int = 2560 * 1440

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width x height`` is refused, or None."""
        if width % self.step or height % self.step:
            return f"width and height must both be divisible by {self.step}"
        if max(width, height) > self.max_ratio * min(width, height):
            return "the aspect ratio must be between 1:3 and 3:1"
        if max(width, height) > self.max_edge:
            return f"the longest side is at most {self.max_edge} pixels"
        if width * height > self.max_pixels:
            return "at most 3840x2160 pixels in total"
        if width * height < self.min_pixels:
            return f"at least {self.min_pixels} pixels in total (e.g. 1024x640)"
        return None


FREE_SIZES = FreeSizes()
_STANDARD_GPT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
# The long side of an aspect ratio's size at each resolution (1K: OpenAI's standard sizes).
_LONG_SIDE = {"0.5K": 1024, "1K": 1536, "2K": 2048, "4K": 3840}
_SQUARE_SIDE = {"0.5K": 1024, "1K": 1024, "2K": 2048, "4K": 2880}


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Price:
    """USD per image, by size and quality ("*" matches any)."""

    table: dict[tuple[str, str], float]
    default: float

    def per_image(self, size: str, quality: str | None) -> float:
        q = quality or "*"
        for key in ((size, q), (size, "*"), ("*", q), ("*", "*")):
            if key in self.table:
                return self.table[key]
        return self.default


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1M tokens (OpenAI's pricing page), and how many image output tokens an image takes.

    ``axis`` holds OpenAI's per-quality factors of the GPT Image 2 output-token
    formula (the one behind OpenAI's cost calculator: 1024x1024 high is 7024
    tokens, 1536x1024 high 5488); ``table`` instead gives OpenAI's per-image
    prices of the older models. ``xhigh`` / ``max`` (2.5 only) have no published
    token counts: their factors are generous assumptions used only for the quote,
    which is trued up to the response's ``usage`` after the call.
    """

    text_in: float
    image_in: float
    image_out: float
    axis: dict[str, int] = field(default_factory=dict)
    table: Price | None = None

    def output_tokens(self, width: int, height: int, quality: str) -> int:
        factor = self.axis[quality]
        long_edge, short_edge = max(width, height), min(width, height)
        short_axis = (2 * factor * short_edge + long_edge) // (2 * long_edge)
        return (factor * short_axis * (2_000_000 + width * height) + 3_999_999) // 4_000_000

    def per_image(self, size: str, quality: str | None, width: int, height: int) -> float:
        q = quality if quality and quality != "auto" else "high"  # "auto" is quoted at its highest
        if self.table is not None:
            return self.table.per_image(size if size != "auto" else "1024x1024", q)
        return round(
            self.output_tokens(width, height, q if q in self.axis else "high") * self.image_out / 1e6, 6
        )

    def cost(self, text_tokens: int, image_tokens: int, output_tokens: int) -> float:
        return (
            text_tokens * self.text_in + image_tokens * self.image_in + output_tokens * self.image_out
        ) / 1e6


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str  # "openai" | "fal"
    provider_model: str
    family: str  # "gpt-image" | "dall-e-2" | "dall-e-3" | "nano-banana" | "flux" | "ideogram" | "playground"
    sizes: tuple[str, ...] = ()  # fixed "WxH" sizes (OpenAI style); empty -> aspect ratios
    free_sizes: FreeSizes | None = None  # besides ``sizes``: any WxH within these limits
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    max_per_call: int = 1
    max_n: int = 10
    edits: bool = False
    edit_model: str | None = None  # model name used when references are given
    output_formats: tuple[str, ...] = ("png",)
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    price: Price = field(default_factory=lambda: Price({}, 0.04))
    tokens: TokenPrice | None = None  # token-priced (GPT image models): the price that counts
    # Lifecycle: announced shutdown date and recommended replacement (None: the configured default).
    shutdown: date | None = None
    replacement: str | None = None
    snapshot_of: str | None = None
    released: date | None = None

    def status(self, on: date | None = None) -> Status:
        if self.shutdown is None:
            return "active"
        return "shutdown" if (on or today()) >= self.shutdown else "deprecated"

    def takes_size(self, size: str) -> bool:
        if size in self.sizes:
            return True
        if self.free_sizes is None or size == "auto":
            return False
        dims = _dims(size)
        return dims is not None and self.free_sizes.problem(*dims) is None

    def per_image(self, size: str, quality: str | None, width: int, height: int) -> float:
        if self.tokens is not None:
            return self.tokens.per_image(size, quality, width, height)
        return self.price.per_image(size, quality)


GPT_QUALITIES = ("low", "medium", "high", "auto")
GPT_FORMATS = ("png", "jpeg", "webp")
GPT_BACKGROUNDS = ("transparent", "opaque", "auto")
# gpt-image-2, 2.5 and 2.6: $5 text / $8 image input, $30 image output per 1M tokens.
_GPT2_TOKENS = TokenPrice(5.0, 8.0, 30.0, axis={"low": 16, "medium": 48, "high": 96})
_GPT25_TOKENS = replace(_GPT2_TOKENS, axis={**_GPT2_TOKENS.axis, "xhigh": 144, "max": 192})
# gpt-image-1.5 and chatgpt-image-latest: $5 / $8 input, $32 image output; OpenAI's per-image table.
_GPT15_TOKENS = TokenPrice(
    5.0,
    8.0,
    32.0,
    table=Price(
        {
            ("1024x1024", "low"): 0.009,
            ("1024x1024", "medium"): 0.034,
            ("1024x1024", "high"): 0.133,
            ("*", "low"): 0.013,
            ("*", "medium"): 0.05,
            ("*", "high"): 0.2,
        },
        0.2,
    ),
)
# gpt-image-1-mini: $2 text / $2.50 image input, $8 image output.
_MINI_TOKENS = TokenPrice(
    2.0,
    2.5,
    8.0,
    table=Price(
        {
            ("1024x1024", "low"): 0.005,
            ("1024x1024", "medium"): 0.011,
            ("1024x1024", "high"): 0.036,
            ("*", "low"): 0.006,
            ("*", "medium"): 0.015,
            ("*", "high"): 0.052,
        },
        0.052,
    ),
)
# gpt-image-1 (shut down 2026-10-23): kept so requests naming it validate; it never runs.
_GPT1_PRICE = Price(
    {
        ("1024x1024", "low"): 0.011,
        ("1024x1024", "medium"): 0.042,
        ("1024x1024", "high"): 0.167,
        ("*", "low"): 0.016,
        ("*", "medium"): 0.063,
        ("*", "high"): 0.25,
    },
    0.167,
)


def _gpt(name: str, tokens: TokenPrice, **kw: object) -> ModelSpec:
    base = ModelSpec(
        name,
        "openai",
        name,
        "gpt-image",
        sizes=_STANDARD_GPT_SIZES,
        max_per_call=10,
        edits=True,
        output_formats=GPT_FORMATS,
        qualities=GPT_QUALITIES,
        backgrounds=GPT_BACKGROUNDS,
        tokens=tokens,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


_DEC_1 = date(2026, 12, 1)
_GPT_IMAGE_MODELS = (
    _gpt("gpt-image-2", _GPT2_TOKENS, free_sizes=FREE_SIZES, released=date(2026, 4, 21)),
    _gpt("gpt-image-2-2026-04-21", _GPT2_TOKENS, free_sizes=FREE_SIZES, snapshot_of="gpt-image-2"),
    *(
        _gpt(
            name,
            _GPT25_TOKENS,
            free_sizes=FREE_SIZES,
            qualities=(*GPT_QUALITIES[:3], "xhigh", "max", "auto"),
            released=date(2026, 9, 8),
            snapshot_of=snapshot_of,
        )
        for name, snapshot_of in (
            ("gpt-image-2.5-sunburst", None),
            ("gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-sunburst"),
            ("gpt-image-2.5-flare", None),
            ("gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-flare"),
        )
    ),
    # The SDK documents arbitrary sizes and xhigh / max for 2 and 2.5 only: 2.6 takes the standard ones.
    _gpt("gpt-image-2.6-sunburst", _GPT2_TOKENS),
    _gpt("gpt-image-2.6-flare", _GPT2_TOKENS),
    _gpt("gpt-image-1.5", _GPT15_TOKENS, shutdown=_DEC_1, replacement="gpt-image-2.6-flare"),
    _gpt(
        "gpt-image-1.5-2025-12-16",
        _GPT15_TOKENS,
        shutdown=_DEC_1,
        replacement="gpt-image-2.6-flare",
        snapshot_of="gpt-image-1.5",
    ),
    _gpt("gpt-image-1-mini", _MINI_TOKENS, shutdown=_DEC_1, replacement="gpt-image-2.6-flare"),
    _gpt("chatgpt-image-latest", _GPT15_TOKENS, shutdown=_DEC_1, replacement="gpt-image-2.6-flare"),
    replace(
        _gpt("gpt-image-1", _GPT2_TOKENS, shutdown=date(2026, 10, 23), replacement="gpt-image-2.5-flare"),
        tokens=None,
        price=_GPT1_PRICE,
    ),
)

_NANO_BANANA = ModelSpec(
    "fal-ai/nano-banana-2",
    "fal",
    "fal-ai/nano-banana-2",
    "nano-banana",
    aspect_ratios=ASPECT_RATIOS_FAL,
    resolutions=tuple(RESOLUTIONS),
    max_per_call=4,
    max_n=4,
    edits=True,
    edit_model="fal-ai/nano-banana-2/edit",
    output_formats=("png", "jpeg", "webp"),
    # fal: $0.08 per image at 1K; 0.5K x0.75, 2K x1.5, 4K x2 (fal's model page, 2026-11-28)
    price=Price({("0.5K", "*"): 0.06, ("2K", "*"): 0.12, ("4K", "*"): 0.16}, 0.08),
)

_DALL_E_RETIRED = date(2026, 5, 12)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        *_GPT_IMAGE_MODELS,
        # DALL·E: retired 2026-05-12 ("use a GPT image model"): their contract is kept so requests
        # naming them are validated as before, then run on the configured default model.
        ModelSpec(
            "dall-e-2",
            "openai",
            "dall-e-2",
            "dall-e-2",
            sizes=("256x256", "512x512", "1024x1024"),
            max_per_call=10,
            edits=True,
            qualities=("standard",),
            price=Price({("256x256", "*"): 0.016, ("512x512", "*"): 0.018}, 0.02),
            shutdown=_DALL_E_RETIRED,
        ),
        ModelSpec(
            "dall-e-3",
            "openai",
            "dall-e-3",
            "dall-e-3",
            sizes=("1024x1024", "1792x1024", "1024x1792"),
            max_per_call=1,
            max_n=1,
            qualities=("standard", "hd"),
            styles=("vivid", "natural"),
            price=Price({("1024x1024", "hd"): 0.08, ("*", "hd"): 0.12, ("1024x1024", "*"): 0.04}, 0.08),
            shutdown=_DALL_E_RETIRED,
        ),
        _NANO_BANANA,
        replace(_NANO_BANANA, name="fal-ai/nano-banana-2/edit", provider_model="fal-ai/nano-banana-2/edit"),
        ModelSpec(
            "fal-ai/flux/schnell",
            "fal",
            "fal-ai/flux/schnell",
            "flux",
            aspect_ratios=ASPECT_RATIOS_FAL,
            resolutions=tuple(RESOLUTIONS),
            max_per_call=4,
            max_n=4,
            output_formats=("png", "jpeg"),
            # fal: $0.003 per megapixel, rounded up; priced at the resolution's square (at most)
            price=Price({("2K", "*"): 0.012, ("4K", "*"): 0.048}, 0.003),
        ),
        ModelSpec(
            "fal-ai/ideogram/v3",
            "fal",
            "fal-ai/ideogram/v3",
            "ideogram",
            aspect_ratios=ASPECT_RATIOS_FAL,
            resolutions=tuple(RESOLUTIONS),
            max_per_call=4,
            max_n=4,
            output_formats=("png",),
            price=Price({}, 0.06),
        ),
        ModelSpec(
            "fal-ai/playground-v25",
            "fal",
            "fal-ai/playground-v25",
            "playground",
            aspect_ratios=ASPECT_RATIOS_FAL,
            resolutions=tuple(RESOLUTIONS),
            max_per_call=4,
            max_n=4,
            output_formats=("png", "jpeg"),
            price=Price({}, 0.02),
        ),
    )
}

# agent.ai's display names are aliases of registry models.
AGENTAI_MODELS = {
    "DALL-E 3": "dall-e-3",
    "Playground v3": "fal-ai/playground-v25",
    "FLUX.1 [schnell]": "fal-ai/flux/schnell",
    "Ideogram": "fal-ai/ideogram/v3",
}
# What the dialects and tools name when the client names nothing (their seeds' defaults).
DIALECT_DEFAULTS = {"openai": "dall-e-2", "agentai": "DALL-E 3"}
_DALL_E_QUALITY = {"standard": "medium", "hd": "high"}


@dataclass(frozen=True)
class Resolved:
    """A request resolved against the registry."""

    requested: str
    spec: ModelSpec  # the model that runs (after aliases, replacements and the edit variant)
    width: int
    height: int
    size: str  # "WxH"
    provider_size: str | None  # the size string the provider takes, if it takes one
    aspect_ratio: str | None
    resolution: str | None
    price_per_image: float
    warnings: tuple[str, ...]
    quality: str | None = None  # what is sent to the provider (mapped onto the running model)
    style: str | None = None
    background: str | None = None

    @property
    def cost(self) -> float:
        return self.price_per_image


def lookup(name: str) -> ModelSpec:
    name = AGENTAI_MODELS.get(name, name)
    spec = MODELS.get(name)
    if spec is None:
        raise InvalidRequest(f"Unknown model '{name}'", param="model")
    return spec


def ratio_dims(aspect_ratio: str | None, resolution: str | None) -> tuple[int, int]:
    """Pixels for an aspect ratio at a resolution: the long side is the resolution's size."""
    base = RESOLUTIONS.get(resolution or "1K", 1024)
    if not aspect_ratio or aspect_ratio == "auto":
        return base, base
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return base, max(8, round(base * h / w / 8) * 8)
    return max(8, round(base * w / h / 8) * 8), base


def dims_ratio(width: int, height: int) -> str:
    g = gcd(width, height)
    return f"{width // g}:{height // g}"


def parse_size(size: str) -> tuple[int, int]:
    w, _, h = size.partition("x")
    return int(w), int(h)


def _dims(size: str) -> tuple[int, int] | None:
    w, sep, h = size.partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        return None
    return int(w), int(h)


def nearest_size(sizes: tuple[str, ...], aspect_ratio: str) -> str:
    """The fixed size of a model closest to an aspect ratio (agent.ai ratios on DALL-E 3)."""
    w, h = (int(x) for x in aspect_ratio.split(":"))
    target = w / h
    fixed = [s for s in sizes if s != "auto"]
    # Distance in log space: 4:3 is as far from 1:1 as 3:4 is, and nearer to 7:4 than to 1:1.
    return min(fixed, key=lambda s: abs(log(parse_size(s)[0] / parse_size(s)[1]) - log(target)))


def ratio_size(aspect_ratio: str, resolution: str | None, rules: FreeSizes = FREE_SIZES) -> tuple[int, int]:
    """The size of exactly ``aspect_ratio`` that a free-size model takes, near ``resolution``.

    At 1K: 1:1 -> 1024x1024, 3:2 -> 1536x1024, 16:9 -> 1536x864, 9:16 -> 864x1536, 4:3 -> 1536x1152.
    """
    w, h = (int(x) for x in aspect_ratio.split(":"))
    g = gcd(w, h)
    w, h = w // g, h // g
    if max(w, h) > rules.max_ratio * min(w, h):
        raise InvalidRequest(
            f"aspect_ratio {aspect_ratio} is outside 1:3 to 3:1, which this model takes", param="aspect_ratio"
        )
    res = resolution or "1K"
    target = _SQUARE_SIDE.get(res, 1024) if w == h else _LONG_SIDE.get(res, 1536)
    unit = rules.step * max(w, h)  # sizes of exactly w:h with both sides divisible by step: k*unit
    k = max(1, round(target / unit))

    def fits(k: int) -> bool:
        return rules.problem(k * rules.step * w, k * rules.step * h) is None

    while k > 1 and not fits(k) and k * rules.step * w * k * rules.step * h > rules.min_pixels:
        k -= 1
    while not fits(k) and k * unit <= rules.max_edge:
        k += 1
    if not fits(k):
        raise InvalidRequest(f"No size of aspect ratio {aspect_ratio} fits this model", param="aspect_ratio")
    return k * rules.step * w, k * rules.step * h


def _validate(req: GenerationRequest, spec: ModelSpec, has_refs: bool) -> None:
    """Check ``req`` against the contract of the model it names (what the client asked for)."""
    if not 1 <= req.n <= spec.max_n:
        raise InvalidRequest(f"n must be between 1 and {spec.max_n} for {spec.name}", param="n")
    if req.quality is not None and spec.qualities and req.quality not in spec.qualities:
        raise InvalidRequest(
            f"Invalid quality '{req.quality}' for {spec.name}; expected one of {', '.join(spec.qualities)}",
            param="quality",
        )
    if req.quality is not None and not spec.qualities:
        raise InvalidRequest(f"quality is not supported by {spec.name}", param="quality")
    if req.style is not None and req.style not in spec.styles:
        raise InvalidRequest(
            f"style is not supported by {spec.name}; describe the style in the prompt"
            if not spec.styles
            else f"Invalid style '{req.style}'; expected one of {', '.join(spec.styles)}",
            param="style",
        )
    if req.background is not None and req.background not in spec.backgrounds:
        raise InvalidRequest(
            f"background '{req.background}' is not supported by {spec.name}", param="background"
        )
    if req.output_format not in spec.output_formats:
        raise InvalidRequest(
            f"output_format '{req.output_format}' is not supported by {spec.name}; "
            f"expected one of {', '.join(spec.output_formats)}",
            param="output_format",
        )
    if req.background == "transparent" and req.output_format == "jpeg":
        raise InvalidRequest("A transparent background needs output_format png or webp", param="background")
    if req.output_compression is not None and spec.family == "gpt-image" and req.output_format == "png":
        raise InvalidRequest(
            "output_compression applies to output_format jpeg or webp only", param="output_compression"
        )
    if has_refs and not spec.edits:
        raise InvalidRequest(f"{spec.name} does not support image edits", param="image")
    if spec.sizes:
        if req.size is not None and not spec.takes_size(req.size):
            dims = _dims(req.size)
            why = spec.free_sizes.problem(*dims) if spec.free_sizes and dims else None
            expected = ", ".join(spec.sizes) + (" or any WIDTHxHEIGHT" if spec.free_sizes else "")
            raise InvalidRequest(
                f"Invalid size '{req.size}' for {spec.name}"
                + (f": {why}" if why else f"; expected one of {expected}"),
                param="size",
            )
        if req.aspect_ratio not in (None, "auto") and spec.free_sizes is not None:
            ratio_size(req.aspect_ratio, req.resolution, spec.free_sizes)  # 400 when no size fits
        if req.resolution is not None and req.resolution not in RESOLUTIONS:
            raise InvalidRequest(f"Invalid resolution '{req.resolution}' for {spec.name}", param="resolution")
    else:
        if req.size is not None:
            raise InvalidRequest(f"{spec.name} takes aspect_ratio and resolution, not size", param="size")
        if req.aspect_ratio is not None and req.aspect_ratio not in spec.aspect_ratios:
            raise InvalidRequest(
                f"Invalid aspect_ratio '{req.aspect_ratio}' for {spec.name}", param="aspect_ratio"
            )
        if req.resolution is not None and req.resolution not in spec.resolutions:
            raise InvalidRequest(f"Invalid resolution '{req.resolution}' for {spec.name}", param="resolution")


def live_model(
    name: str, *, default_model: str, on: date | None = None, warnings: list[str] | None = None
) -> ModelSpec:
    """The model that runs for ``name``: itself while live, else its replacement (followed until live).

    Retired models without a replacement of their own run on ``default_model``.
    """
    on = on or today()
    spec = lookup(name)
    seen = {spec.name}
    while spec.status(on) == "shutdown":
        target = spec.replacement or default_model
        nxt = lookup(target)
        if nxt.name in seen:
            nxt = lookup(default_model)
            if nxt.name in seen:
                raise InvalidRequest(
                    f"Model '{name}' is shut down and has no live replacement", param="model"
                )
        if warnings is not None:
            warnings.append(
                f"Model '{spec.name}' was shut down by {_owner(spec)} on {spec.shutdown}; "
                f"'{nxt.name}' ran instead."
            )
        seen.add(nxt.name)
        spec = nxt
    if spec.shutdown is not None and warnings is not None:
        warnings.append(
            f"Model '{spec.name}' shuts down on {spec.shutdown}; "
            f"use '{spec.replacement or default_model}' instead."
        )
    return spec


def _owner(spec: ModelSpec) -> str:
    return "OpenAI" if spec.provider == "openai" else spec.provider


def resolve(
    req: GenerationRequest,
    *,
    aliases: dict[str, str] | None = None,
    has_refs: bool = False,
    default_model: str | None = None,
    on: date | None = None,
) -> Resolved:
    """Validate ``req`` against its model and work out what runs, at which size, with which options."""
    default_model = default_model or DEFAULT_MODEL
    warnings: list[str] = []
    requested = req.model
    spec = lookup(requested)
    _validate(req, spec, has_refs)

    target = (aliases or {}).get(spec.name) or (aliases or {}).get(requested)
    name = spec.name
    if target and lookup(target).name != spec.name:
        name = lookup(target).name
        warnings.append(f"Model '{spec.name}' is configured to run as '{name}'.")
    run = live_model(name, default_model=default_model, on=on, warnings=warnings)
    if has_refs and not run.edits:
        raise InvalidRequest(
            f"{run.name} (running for {spec.name}) does not support image edits", param="image"
        )
    if has_refs and run.edit_model and run.edit_model != run.name:
        run = lookup(run.edit_model)

    width, height, provider_size, aspect_ratio, resolution = _geometry(req, spec, run, warnings)
    quality, style, background = _options(req, spec, run, warnings)
    size_key = provider_size or resolution or "*"
    price = run.per_image(size_key, quality if quality in run.qualities else None, width, height)
    return Resolved(
        requested=requested,
        spec=run,
        width=width,
        height=height,
        size=f"{width}x{height}",
        provider_size=provider_size,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        price_per_image=price,
        warnings=tuple(warnings),
        quality=quality,
        style=style,
        background=background,
    )


def _geometry(
    req: GenerationRequest, asked: ModelSpec, run: ModelSpec, warnings: list[str]
) -> tuple[int, int, str | None, str | None, str | None]:
    """(width, height, provider size, aspect ratio, resolution) on the running model."""
    aspect_ratio, resolution = req.aspect_ratio, req.resolution
    if run.sizes:  # OpenAI style: a size string
        if req.size is not None:
            size = req.size
            if not run.takes_size(size):
                w, h = parse_size(size)
                size = _closest_size(run, dims_ratio(w, h), None)
                warnings.append(f"size '{req.size}' is not offered by {run.name}; {size} was used.")
        elif aspect_ratio not in (None, "auto"):
            size = _closest_size(run, aspect_ratio, resolution)
        elif resolution is not None:  # "auto" at a resolution: the square of that resolution
            size = _closest_size(run, "1:1", resolution)
        else:
            size = "1024x1024"
        width, height = (1024, 1024) if size == "auto" else parse_size(size)
        if run.free_sizes and width * height > run.free_sizes.experimental_above:
            warnings.append(f"{size} is above 2560x1440: OpenAI calls such sizes experimental.")
        return width, height, size, dims_ratio(width, height), None
    # fal style: aspect ratio and resolution
    if req.size is not None:  # a sized request aliased to a fal model
        w, h = (1024, 1024) if req.size == "auto" else parse_size(req.size)
        aspect_ratio = dims_ratio(w, h)
        if aspect_ratio not in run.aspect_ratios:
            aspect_ratio = min(
                (r for r in run.aspect_ratios if r != "auto"), key=lambda r: abs(log(_ratio(r)) - log(w / h))
            )
        return w, h, req.size, aspect_ratio, None
    aspect_ratio = aspect_ratio or "auto"
    resolution = resolution or "1K"
    width, height = ratio_dims(aspect_ratio, resolution)
    return width, height, None, aspect_ratio, resolution


def _ratio(aspect_ratio: str) -> float:
    w, h = (int(x) for x in aspect_ratio.split(":"))
    return w / h


def _closest_size(run: ModelSpec, aspect_ratio: str, resolution: str | None) -> str:
    """The size of ``aspect_ratio`` on ``run``: exact on free-size models, else the nearest fixed one."""
    if run.free_sizes is not None:
        try:
            w, h = ratio_size(aspect_ratio, resolution, run.free_sizes)
            return f"{w}x{h}"
        except InvalidRequest:
            pass
    return nearest_size(run.sizes, aspect_ratio)


def _options(
    req: GenerationRequest, asked: ModelSpec, run: ModelSpec, warnings: list[str]
) -> tuple[str | None, str | None, str | None]:
    """quality / style / background for the provider call, mapped onto the running model."""
    quality, style, background = req.quality, req.style, req.background
    if quality is not None and quality not in run.qualities:
        mapped = _DALL_E_QUALITY.get(quality) if run.family == "gpt-image" else None
        if mapped is None and "high" in run.qualities and quality in ("xhigh", "max"):
            mapped = "high"
        if mapped not in run.qualities:
            mapped = None
        warnings.append(
            f"quality '{quality}' of {asked.name} is not offered by {run.name}; "
            + (f"'{mapped}' was used." if mapped else "it was not sent.")
        )
        quality = mapped
    if style is not None and style not in run.styles:
        warnings.append(
            f"style '{style}' is not a parameter of {run.name}; it was not sent "
            "(describe the style in the prompt)."
        )
        style = None
    if background is not None and background not in run.backgrounds:
        warnings.append(f"background '{background}' is not offered by {run.name}; it was not sent.")
        background = None
    return quality, style, background


def call_options(req: GenerationRequest, resolved: Resolved) -> dict[str, str | None]:
    """quality / style / background for the provider call (mapped onto the running model by resolve)."""
    return {"quality": resolved.quality, "style": resolved.style, "background": resolved.background}


def cost_usd(
    resolved: Resolved, images: int, text_tokens: int, image_tokens: int, output_tokens: int
) -> float:
    """What ``images`` images cost: from the response's token usage when the model is token-priced and
    the provider reported usage, else the per-image price."""
    tokens = resolved.spec.tokens
    if tokens is not None and output_tokens > 0:
        return round(tokens.cost(text_tokens, image_tokens, output_tokens), 6)
    return round(resolved.price_per_image * images, 6)


# --------------------------------------------------------------------------- catalogue


def catalogue(*, default_model: str, on: date | None = None) -> list[dict[str, object]]:
    """Every model a client may name: what it can do, its price and its lifecycle (``GET /v1/models``)."""
    on = on or today()
    out: list[dict[str, object]] = []
    for spec in MODELS.values():
        if spec.name.endswith("/edit"):
            continue
        status = spec.status(on)
        runs = live_model(spec.name, default_model=default_model, on=on).name
        entry: dict[str, object] = {
            "id": spec.name,
            "object": "model",
            "created": _epoch(spec.released),
            "owned_by": "openai" if spec.provider == "openai" else spec.provider,
            "provider": spec.provider,
            "status": status,
            "shutdown_date": spec.shutdown.isoformat() if spec.shutdown else None,
            "replacement": (spec.replacement or default_model) if spec.shutdown else None,
            "runs_as": runs,
            "snapshot_of": spec.snapshot_of,
            "capabilities": _capabilities(spec),  # what a request naming it may ask for
            "pricing": _pricing(lookup(runs)),  # what it costs: the model that runs
        }
        out.append(entry)
    for display, name in AGENTAI_MODELS.items():
        out.append(
            {
                "id": display,
                "object": "model",
                "created": 0,
                "owned_by": "imagemint",
                "provider": MODELS[name].provider,
                "status": "active",
                "shutdown_date": None,
                "replacement": None,
                "runs_as": live_model(name, default_model=default_model, on=on).name,
                "alias_of": name,
                "capabilities": {"aspect_ratios": ["9:16", "1:1", "4:3", "16:9"], "max_n": 1, "edits": False},
                "pricing": _pricing(live_model(name, default_model=default_model, on=on)),
            }
        )
    return out


def _epoch(day: date | None) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) if day else 0


def _capabilities(spec: ModelSpec) -> dict[str, object]:
    caps: dict[str, object] = {
        "max_n": spec.max_n,
        "edits": spec.edits,
        "output_formats": list(spec.output_formats),
    }
    if spec.sizes:
        caps["sizes"] = list(spec.sizes)
        if spec.free_sizes:
            r = spec.free_sizes
            caps["custom_sizes"] = {
                "multiple_of": r.step,
                "aspect_ratio": "1:3 to 3:1",
                "max": "3840x2160",
                "max_edge": r.max_edge,
                "min_pixels": r.min_pixels,
                "max_pixels": r.max_pixels,
                "experimental_above": "2560x1440",
            }
    else:
        caps["aspect_ratios"] = list(spec.aspect_ratios)
        caps["resolutions"] = list(spec.resolutions)
    if spec.qualities:
        caps["qualities"] = list(spec.qualities)
    if spec.styles:
        caps["styles"] = list(spec.styles)
    if spec.backgrounds:
        caps["backgrounds"] = list(spec.backgrounds)
    return caps


def _pricing(spec: ModelSpec) -> dict[str, object]:
    if spec.tokens is not None:
        t = spec.tokens
        per_image = {q: spec.per_image("1024x1024", q, 1024, 1024) for q in spec.qualities if q != "auto"}
        return {
            "unit": "token",
            "usd_per_1m_tokens": {
                "text_input": t.text_in,
                "image_input": t.image_in,
                "image_output": t.image_out,
            },
            "usd_per_image_1024x1024": per_image,
        }
    if spec.sizes:
        return {"unit": "image", "usd_per_image": spec.price.per_image("1024x1024", None)}
    return {
        "unit": "image",
        "usd_per_image": {r: spec.price.per_image(r, None) for r in spec.resolutions},
    }
