"""The model registry: one table for the whole system.

Every model name a dialect accepts maps to a :class:`ModelSpec`: the provider
that runs it, the provider's own model id, what it can do (sizes or aspect
ratios and resolutions, images per call, edits, output formats) and its price
per image. Requests are validated against the spec of the model they name
(400 in the dialect's shape, naming the parameter), and geometry is mapped
between dialects here (size <-> aspect ratio <-> resolution <-> pixels).

Aliases (``IMAGEMINT_MODEL_ALIASES``, e.g. ``dall-e-2=gpt-image-1``) are
configuration: OpenAI retired dall-e-2/3 in 2026, so by default both are sent
to gpt-image-1 and the response says which model ran. With no provider key
configured every model runs on the offline ``local`` provider with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import gcd, log

from imagemint.domain.models import GenerationRequest
from imagemint.errors import InvalidRequest

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

DEFAULT_ALIASES = {"dall-e-2": "gpt-image-1", "dall-e-3": "gpt-image-1"}


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
class ModelSpec:
    name: str
    provider: str  # "openai" | "fal"
    provider_model: str
    family: str  # "gpt-image" | "dall-e-2" | "dall-e-3" | "nano-banana" | "flux" | "ideogram" | "playground"
    sizes: tuple[str, ...] = ()  # fixed "WxH" sizes (OpenAI style); empty -> aspect ratios
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


_GPT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
_GPT_PRICE = Price(
    {
        ("1024x1024", "low"): 0.011,
        ("1024x1024", "medium"): 0.042,
        ("1024x1024", "high"): 0.167,
        ("1536x1024", "low"): 0.016,
        ("1536x1024", "medium"): 0.063,
        ("1536x1024", "high"): 0.25,
        ("1024x1536", "low"): 0.016,
        ("1024x1536", "medium"): 0.063,
        ("1024x1536", "high"): 0.25,
    },
    0.042,
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
    price=Price({("4K", "*"): 0.16}, 0.08),
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "gpt-image-1",
            "openai",
            "gpt-image-1",
            "gpt-image",
            sizes=_GPT_SIZES,
            max_per_call=10,
            edits=True,
            output_formats=("png", "jpeg", "webp"),
            qualities=("low", "medium", "high", "auto"),
            backgrounds=("transparent", "opaque", "auto"),
            price=_GPT_PRICE,
        ),
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
            price=Price({}, 0.003),
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


@dataclass(frozen=True)
class Resolved:
    """A request resolved against the registry."""

    requested: str
    spec: ModelSpec  # the model that runs (after aliases and the edit variant)
    width: int
    height: int
    size: str  # "WxH"
    provider_size: str | None  # the size string the provider takes, if it takes one
    aspect_ratio: str | None
    resolution: str | None
    price_per_image: float
    warnings: tuple[str, ...]

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


def nearest_size(sizes: tuple[str, ...], aspect_ratio: str) -> str:
    """The fixed size of a model closest to an aspect ratio (agent.ai ratios on DALL-E 3)."""
    w, h = (int(x) for x in aspect_ratio.split(":"))
    target = w / h
    fixed = [s for s in sizes if s != "auto"]
    # Distance in log space: 4:3 is as far from 1:1 as 3:4 is, and nearer to 7:4 than to 1:1.
    return min(fixed, key=lambda s: abs(log(parse_size(s)[0] / parse_size(s)[1]) - log(target)))


def resolve(
    req: GenerationRequest, *, aliases: dict[str, str] | None = None, has_refs: bool = False
) -> Resolved:
    """Validate ``req`` against its model and work out what runs and at which size."""
    warnings: list[str] = []
    requested = req.model
    name = AGENTAI_MODELS.get(requested, requested)
    spec = lookup(name)
    alias_map = DEFAULT_ALIASES if aliases is None else aliases
    target = alias_map.get(spec.name)

    # Validate against the requested model's contract (what the client asked for).
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
            f"style is not supported by {spec.name}"
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
    if has_refs and not spec.edits:
        raise InvalidRequest(f"{spec.name} does not support image edits", param="image")

    aspect_ratio = req.aspect_ratio
    resolution = req.resolution
    provider_size: str | None = None
    if spec.sizes:
        size = req.size or ("1024x1024" if "1024x1024" in spec.sizes else spec.sizes[0])
        if req.size is None and aspect_ratio:
            size = nearest_size(spec.sizes, aspect_ratio) if aspect_ratio != "auto" else size
        if size not in spec.sizes:
            raise InvalidRequest(
                f"Invalid size '{size}' for {spec.name}; expected one of {', '.join(spec.sizes)}",
                param="size",
            )
        provider_size = size
        width, height = (1024, 1024) if size == "auto" else parse_size(size)
        aspect_ratio = dims_ratio(width, height)
    else:
        if req.size is not None:
            raise InvalidRequest(f"{spec.name} takes aspect_ratio and resolution, not size", param="size")
        if aspect_ratio is not None and aspect_ratio not in spec.aspect_ratios:
            raise InvalidRequest(
                f"Invalid aspect_ratio '{aspect_ratio}' for {spec.name}", param="aspect_ratio"
            )
        if resolution is not None and resolution not in spec.resolutions:
            raise InvalidRequest(f"Invalid resolution '{resolution}' for {spec.name}", param="resolution")
        aspect_ratio = aspect_ratio or "auto"
        resolution = resolution or "1K"
        width, height = ratio_dims(aspect_ratio, resolution)

    run = spec
    if target and target != spec.name:
        run = lookup(target)
        warnings.append(f"Model '{spec.name}' is retired; '{run.name}' ran instead.")
        if run.sizes and provider_size not in run.sizes:
            provider_size = nearest_size(run.sizes, dims_ratio(width, height))
            width, height = parse_size(provider_size)
    if has_refs and run.edit_model and run.edit_model != run.name:
        run = lookup(run.edit_model)

    size_key = provider_size or resolution or "*"
    quality = (
        _QUALITY_TO_GPT.get(req.quality or "", req.quality) if run.family == "gpt-image" else req.quality
    )
    price = run.price.per_image(size_key, quality if quality in run.qualities else None)
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
    )


_QUALITY_TO_GPT = {"standard": "medium", "hd": "high"}


def call_options(req: GenerationRequest, resolved: Resolved) -> dict[str, str | None]:
    """quality / style / background for the provider call, translated when an alias changed the family."""
    run = resolved.spec
    quality = req.quality
    style = req.style
    if run.family == "gpt-image":
        quality = _QUALITY_TO_GPT.get(quality or "", quality)
        style = None  # gpt-image has no style parameter; dall-e-3's style is dropped
    if quality is not None and run.qualities and quality not in run.qualities:
        quality = None
    if style is not None and style not in run.styles:
        style = None
    background = req.background if req.background in run.backgrounds else None
    return {"quality": quality, "style": style, "background": background}
