"""Unit tests of the offline ``local`` image provider."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageChops, ImageStat

from imagemint.adapters.providers.local import MASK_WARNING, OFFLINE_WARNING, LocalProvider
from imagemint.domain.ports import InputImage, ProviderCall
from imagemint.errors import InputRefused, InvalidRequest

PROMPT = "a lighthouse on a cliff above a stormy sea"


def make_call(**overrides) -> ProviderCall:
    fields = {
        "prompt": PROMPT,
        "provider_model": "local-v1",
        "n": 1,
        "width": 256,
        "height": 256,
        "output_format": "png",
        "seed": 42,
    }
    fields.update(overrides)
    return ProviderCall(**fields)


def generate(**overrides):
    return LocalProvider().generate(make_call(**overrides))


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute per-channel difference (0-255) of two same-size images."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def checkerboard(size: int = 256, cell: int = 32) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    black = Image.new("RGB", (cell, cell), (0, 0, 0))
    for y in range(0, size, cell):
        for x in range(0, size, cell):
            if (x // cell + y // cell) % 2:
                img.paste(black, (x, y))
    return img


# ---------------------------------------------------------------- result shape


def test_provider_name_and_result_fields():
    provider = LocalProvider()
    assert provider.name == "local"
    result = provider.generate(make_call(provider_model="local-test-model"))
    assert result.model == "local-test-model"
    assert result.metadata == {"provider": "local", "offline": True}
    assert result.prompt_tokens == len(PROMPT.split())
    assert result.completion_tokens == 0
    [image] = result.images
    assert (image.width, image.height) == (256, 256)
    assert image.media_type == "image/png"
    assert image.revised_prompt is None


def test_exactly_one_offline_warning():
    result = generate()
    offline = [w for w in result.warnings if "offline" in w and "local" in w]
    assert offline == [OFFLINE_WARNING]
    assert MASK_WARNING not in result.warnings


def test_mask_is_ignored_with_a_warning():
    mask = InputImage(data=encode(Image.new("RGBA", (64, 64))), media_type="image/png", name="mask")
    result = generate(mask=mask)
    assert MASK_WARNING in result.warnings
    assert result.warnings.count(OFFLINE_WARNING) == 1


# ---------------------------------------------------------------- determinism


def test_same_inputs_give_byte_identical_output():
    first = generate(n=2)
    second = generate(n=2)
    assert [i.data for i in first.images] == [i.data for i in second.images]


def test_missing_seed_means_seed_zero():
    assert generate(seed=None).images[0].data == generate(seed=0).images[0].data


def test_seed_changes_the_image():
    a = decode(generate(seed=1).images[0].data)
    b = decode(generate(seed=2).images[0].data)
    assert mean_abs_diff(a, b) > 10


def test_images_of_one_call_differ_and_follow_seed_plus_index():
    result = generate(n=3, seed=10)
    datas = [i.data for i in result.images]
    assert len(set(datas)) == 3
    imgs = [decode(d) for d in datas]
    assert mean_abs_diff(imgs[0], imgs[1]) > 10
    assert mean_abs_diff(imgs[1], imgs[2]) > 10
    # image i is image 0 of seed + i
    assert datas[2] == generate(n=1, seed=12).images[0].data


# ---------------------------------------------------------------- sizes and formats


@pytest.mark.parametrize(
    "width,height",
    [(64, 64), (256, 256), (1024, 1024), (1536, 1024), (4096, 512), (512, 4096), (100, 333)],
)
def test_honours_the_size(width, height):
    result = generate(width=width, height=height)
    [image] = result.images
    assert (image.width, image.height) == (width, height)
    assert decode(image.data).size == (width, height)


def test_largest_size_is_fast_enough():
    start = time.perf_counter()
    result = generate(width=4096, height=4096)
    elapsed = time.perf_counter() - start
    assert decode(result.images[0].data).size == (4096, 4096)
    assert elapsed < 6, f"4096x4096 png took {elapsed:.2f}s"  # ~0.6 s on a dev machine; generous for CI


@pytest.mark.parametrize(
    "fmt,pil_format,media_type",
    [("png", "PNG", "image/png"), ("jpeg", "JPEG", "image/jpeg"), ("webp", "WEBP", "image/webp")],
)
def test_output_formats(fmt, pil_format, media_type):
    [image] = generate(output_format=fmt, width=320, height=200).images
    assert image.media_type == media_type
    img = decode(image.data)
    assert img.format == pil_format
    assert img.size == (320, 200)
    if fmt == "jpeg":
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_output_compression_maps_to_quality(fmt):
    low = generate(output_format=fmt, output_compression=5).images[0].data
    high = generate(output_format=fmt, output_compression=95).images[0].data
    assert len(low) < len(high)


def test_unknown_output_format_is_refused():
    with pytest.raises(InvalidRequest) as info:
        generate(output_format="gif")
    assert info.value.param == "output_format"


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background(fmt):
    [image] = generate(output_format=fmt, background="transparent").images
    img = decode(image.data)
    assert img.mode == "RGBA"
    alpha = img.getchannel("A")
    lo, hi = alpha.getextrema()
    assert lo == 0 and hi == 255
    # most of the picture outside the shapes and the caption band is see-through
    assert alpha.histogram()[0] > img.width * img.height * 0.2


def test_opaque_background_by_default():
    img = decode(generate(output_format="png").images[0].data)
    assert img.mode == "RGB"


def test_transparent_jpeg_falls_back_to_opaque():
    result = generate(output_format="jpeg", background="transparent")
    assert decode(result.images[0].data).mode == "RGB"
    assert len(result.warnings) == 2


# ---------------------------------------------------------------- content


def test_not_blank():
    img = decode(generate().images[0].data)
    stat = ImageStat.Stat(img)
    assert min(stat.stddev) > 10
    assert len(img.getcolors(maxcolors=1 << 20) or []) > 200


def test_different_prompts_give_clearly_different_images():
    a = decode(generate(prompt="a red sports car on a desert highway").images[0].data)
    b = decode(generate(prompt="an underwater city of glass domes").images[0].data)
    assert mean_abs_diff(a, b) > 25
    # the palettes differ: compare the dominant colours of heavily reduced images
    pal_a = {c for _, c in a.quantize(6).convert("RGB").getcolors()}
    pal_b = {c for _, c in b.quantize(6).convert("RGB").getcolors()}
    assert pal_a != pal_b
    mean_a, mean_b = ImageStat.Stat(a).mean, ImageStat.Stat(b).mean
    assert sum(abs(x - y) for x, y in zip(mean_a, mean_b, strict=True)) > 20


def test_colour_word_steers_the_palette():
    red = ImageStat.Stat(decode(generate(prompt="a red red rose").images[0].data)).mean
    blue = ImageStat.Stat(decode(generate(prompt="a blue ocean wave").images[0].data)).mean
    assert red[0] > red[2]
    assert blue[2] > blue[0]


@pytest.mark.parametrize(
    "prompt",
    [
        "日本語のプロンプト、桜と富士山 🗻🌸",
        "emoji 👩‍👩‍👧‍👦 and flags 🇫🇷 and math ∑∫√",
        "مرحبا بالعالم — right to left \u202e text",
        "controls \x00\x01\x07 tabs\tnew\nlines and a lone surrogate \ud800 here",
        "",
        "   ",
        "x" * 5000,
        "word " * 2000,
        "Zalgo t̷̢̛e̶̡͝x̸̛̠t̵̨̛",
    ],
)
def test_any_unicode_prompt_works(prompt):
    result = generate(prompt=prompt, width=200, height=120)
    assert decode(result.images[0].data).size == (200, 120)


def test_prompt_caption_is_drawn_on_a_band_at_the_bottom():
    from imagemint.adapters.providers.local import _caption

    def captioned(prompt: str) -> Image.Image:
        canvas = Image.new("RGBA", (400, 300), (128, 128, 128, 255))
        _caption(canvas, prompt, "footer")
        return canvas

    short = captioned("hello world")
    long = captioned("hello world " * 40)
    for img in (short, long):
        assert img.getpixel((200, 10)) == (128, 128, 128, 255)  # top untouched
        band = img.crop((0, 200, 400, 300)).convert("L")
        assert band.getextrema()[1] > 240  # white text
        assert band.getextrema()[0] < 100  # on a dark band
    top_of_band = [
        next(y for y in range(300) if img.getpixel((399, y))[:3] != (128, 128, 128)) for img in (short, long)
    ]
    assert top_of_band[1] < top_of_band[0]  # long prompts wrap onto more lines


def test_wrap_breaks_long_words_and_truncates_with_ellipsis():
    from imagemint.adapters.providers.local import _font, _wrap

    font = _font(20)
    assert _wrap("short prompt", font, 400, 3) == ["short prompt"]
    lines = _wrap("a" * 200, font, 200, 50)
    assert len(lines) > 1 and "".join(lines) == "a" * 200
    assert not lines[-1].endswith("...")
    lines = _wrap("word " * 200, font, 200, 3)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert all(font.getlength(line) <= 200 for line in lines)


# ---------------------------------------------------------------- references


def test_reference_shapes_the_output():
    ref_img = checkerboard(256)
    ref = InputImage(data=encode(ref_img, "PNG"), media_type="image/png", name="image")
    plain = decode(generate(width=256, height=256).images[0].data)
    edited = decode(generate(width=256, height=256, references=(ref,)).images[0].data)
    d_plain = mean_abs_diff(plain, ref_img)
    d_edit = mean_abs_diff(edited, ref_img)
    assert d_edit < d_plain * 0.75, (d_edit, d_plain)


def test_reference_is_fitted_to_other_sizes_and_formats():
    ref_img = checkerboard(300).resize((300, 180))
    ref = InputImage(data=encode(ref_img, "JPEG"), media_type="image/jpeg", name="image")
    result = generate(width=512, height=128, references=(ref,), output_format="webp")
    assert decode(result.images[0].data).size == (512, 128)


def test_further_references_become_insets():
    first = InputImage(data=encode(checkerboard(128), "PNG"), media_type="image/png", name="image")
    second = InputImage(
        data=encode(Image.new("RGB", (90, 60), (255, 0, 0)), "WEBP"), media_type="image/webp", name="image[1]"
    )
    one = decode(generate(references=(first,)).images[0].data)
    two = decode(generate(references=(first, second)).images[0].data)
    bbox = ImageChops.difference(one, two).getbbox()
    assert bbox is not None
    # the inset sits in the top-left corner
    assert bbox[0] < 32 and bbox[1] < 32
    r, g, b = two.getpixel((bbox[0] + 20, bbox[1] + 20))[:3]
    assert r > 200 and g < 60 and b < 60


def test_reference_is_deterministic():
    ref = InputImage(data=encode(checkerboard(64), "PNG"), media_type="image/png", name="image")
    assert generate(references=(ref,)).images[0].data == generate(references=(ref,)).images[0].data


@pytest.mark.parametrize("data", [b"", b"not an image at all", encode(checkerboard(64), "PNG")[:60]])
def test_undecodable_reference_is_refused(data):
    good = InputImage(data=encode(checkerboard(64), "PNG"), media_type="image/png", name="image[0]")
    bad = InputImage(data=data, media_type="image/png", name="image[1]")
    with pytest.raises(InputRefused) as info:
        generate(references=(good, bad))
    assert info.value.param == "image[1]"


def test_unsupported_reference_format_is_refused():
    bad = InputImage(data=encode(checkerboard(64), "GIF"), media_type="image/gif", name="image")
    with pytest.raises(InputRefused) as info:
        generate(references=(bad,))
    assert info.value.param == "image"
