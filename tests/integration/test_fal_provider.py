"""FalProvider and its queue client (FalQueue) against the fal queue stub.

Asserts the exact arguments each model gets (the stub refuses what fal's
current model schemas refuse), the queue protocol (submit, status polls, result,
downloads, cancel), that every fault becomes the right domain error, and that
429s are retried in one place within a bounded budget.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from stubs import make_image
from stubs.fal_stub import FalStub

from imagemint.adapters.net.fetch import image_dimensions
from imagemint.adapters.providers.fal_provider import (
    DEFAULT_RETRY_BUDGET_S,
    FAL_QUEUE_URL,
    FalHTTPError,
    FalProvider,
    FalQueue,
    HttpDownloader,
    build_arguments,
    result_downloader,
)
from imagemint.domain.ports import InputImage, ProviderCall
from imagemint.errors import (
    InternalError,
    InvalidRequest,
    ModerationBlocked,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from imagemint.settings import Settings

pytestmark = pytest.mark.integration

REF_PNG, _ = make_image(24, 16, "png", 0)
REF_JPEG, _ = make_image(20, 20, "jpeg", 1)


def _call(**kw: Any) -> ProviderCall:
    values: dict[str, Any] = {
        "prompt": "a neon koi pond",
        "provider_model": "fal-ai/nano-banana-2",
        "n": 1,
        "width": 1024,
        "height": 1024,
        "aspect_ratio": "1:1",
        "resolution": "1K",
    }
    values.update(kw)
    return ProviderCall(**values)


def _decode_data_uri(uri: str) -> tuple[str, bytes]:
    header, _, payload = uri.partition(",")
    return header, base64.b64decode(payload)


# --------------------------------------------------------------------------- nano-banana-2


def test_nano_banana_2_sends_aspect_ratio_resolution_and_num_images(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    result = fal_provider.generate(
        _call(
            n=3, aspect_ratio="16:9", resolution="2K", output_format="webp", seed=7, width=2048, height=1152
        )
    )
    [submit] = fal_stub.submissions
    assert submit.path == "/fal-ai/nano-banana-2"
    assert submit.headers["authorization"] == "Key stub-key-id:stub-key-secret"
    assert submit.headers["x-fal-request-timeout"] == "2.0"
    assert submit.json == {
        "prompt": "a neon koi pond",
        "num_images": 3,
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "output_format": "webp",
        "seed": 7,
    }
    # the queue protocol: polls until COMPLETED, one result, every image downloaded
    assert len(fal_stub.on("status")) >= 3
    assert len(fal_stub.on("result")) == 1
    assert len(fal_stub.on("file")) == 3
    assert fal_stub.on("cancel") == []
    assert len(result.images) == 3
    assert {img.media_type for img in result.images} == {"image/webp"}
    assert (result.images[0].width, result.images[0].height) == (256, 144)  # the stub scales 2048x1152 down
    assert result.model == "fal-ai/nano-banana-2"
    request_id = next(iter(fal_stub.queue))
    assert result.metadata == {"provider": "fal", "request_id": request_id}
    assert result.warnings == []


def test_nano_banana_2_with_references_runs_the_edit_variant_with_data_uris(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    result = fal_provider.generate(
        _call(
            n=2,
            aspect_ratio="auto",
            references=(
                InputImage(REF_PNG, "image/png", "image"),
                InputImage(REF_JPEG, "image/jpeg", "image"),
            ),
        )
    )
    [submit] = fal_stub.submissions
    assert submit.path == "/fal-ai/nano-banana-2/edit"
    args = dict(submit.json)
    urls = args.pop("image_urls")
    assert args == {
        "prompt": "a neon koi pond",
        "num_images": 2,
        "aspect_ratio": "auto",
        "resolution": "1K",
        "output_format": "png",
    }
    assert [_decode_data_uri(u) for u in urls] == [
        ("data:image/png;base64", REF_PNG),
        ("data:image/jpeg;base64", REF_JPEG),
    ]
    assert result.model == "fal-ai/nano-banana-2/edit"
    # status URLs use the app's owner/alias, as fal's queue does
    assert fal_stub.on("status")[0].path.startswith("/fal-ai/nano-banana-2/requests/")
    assert len(result.images) == 2


def test_the_edit_variant_without_references_is_refused_before_submitting(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    with pytest.raises(InvalidRequest) as info:
        fal_provider.generate(_call(provider_model="fal-ai/nano-banana-2/edit"))
    assert info.value.param == "image"
    assert fal_stub.requests == []


# --------------------------------------------------------------------------- flux, ideogram, playground


def test_flux_schnell_sends_image_size_as_width_and_height(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    result = fal_provider.generate(
        _call(
            provider_model="fal-ai/flux/schnell",
            n=2,
            width=1024,
            height=576,
            aspect_ratio="16:9",
            seed=5,
            output_format="jpeg",
        )
    )
    assert fal_stub.submissions[0].path == "/fal-ai/flux/schnell"
    assert fal_stub.last_arguments() == {
        "prompt": "a neon koi pond",
        "num_images": 2,
        "image_size": {"width": 1024, "height": 576},
        "output_format": "jpeg",
        "seed": 5,
    }
    assert [img.media_type for img in result.images] == ["image/jpeg", "image/jpeg"]
    assert (result.images[0].width, result.images[0].height) == (256, 144)
    assert result.metadata["seed"] == 5


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"provider_model": "fal-ai/flux/schnell", "output_format": "webp"}, "output_format"),
        (
            {"provider_model": "fal-ai/flux/schnell", "references": (InputImage(REF_PNG, "image/png"),)},
            "image",
        ),
        (
            {"mask": InputImage(REF_PNG, "image/png"), "references": (InputImage(REF_PNG, "image/png"),)},
            "mask",
        ),
        ({"provider_model": "fal-ai/ideogram/v3", "quality": "ultra"}, "quality"),
    ],
)
def test_arguments_a_model_cannot_take_are_refused_before_submitting(
    fal_provider: FalProvider, fal_stub: FalStub, kw: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        fal_provider.generate(_call(**kw))
    assert info.value.param == param
    assert fal_stub.requests == []


def test_ideogram_v3_maps_aspect_ratio_style_and_quality(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    result = fal_provider.generate(
        _call(
            provider_model="fal-ai/ideogram/v3",
            aspect_ratio="16:9",
            width=1024,
            height=576,
            style="realistic",
            quality="high",
            n=1,
            references=(InputImage(REF_PNG, "image/png"),),
        )
    )
    args = fal_stub.last_arguments()
    assert args.pop("image_urls") == [f"data:image/png;base64,{base64.b64encode(REF_PNG).decode()}"]
    assert args == {
        "prompt": "a neon koi pond",
        "num_images": 1,
        "image_size": "landscape_16_9",
        "style": "REALISTIC",
        "rendering_speed": "QUALITY",
    }
    assert result.images[0].media_type == "image/png"


def test_ideogram_v3_without_a_preset_sends_width_and_height(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_provider.generate(
        _call(provider_model="fal-ai/ideogram/v3", aspect_ratio="21:9", width=1024, height=440)
    )
    assert fal_stub.last_arguments()["image_size"] == {"width": 1024, "height": 440}
    assert "output_format" not in fal_stub.last_arguments()


def test_playground_v25_sends_image_size(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_provider.generate(
        _call(provider_model="fal-ai/playground-v25", width=768, height=1024, aspect_ratio="3:4", n=4)
    )
    assert fal_stub.last_arguments() == {
        "prompt": "a neon koi pond",
        "num_images": 4,
        "image_size": {"width": 768, "height": 1024},
        "format": "png",  # playground-v25 reads `format`, not `output_format`
    }
    assert len(fal_stub.on("file")) == 4


def test_extra_arguments_fill_in_but_never_override(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_provider.generate(_call(extra={"safety_tolerance": "2", "prompt": "something else", "num_images": 4}))
    args = fal_stub.last_arguments()
    assert args["safety_tolerance"] == "2"
    assert args["prompt"] == "a neon koi pond"
    assert args["num_images"] == 1


def test_data_uri_results_are_decoded_without_downloads(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    result = fal_provider.generate(_call(n=2, extra={"sync_mode": True}))
    assert fal_stub.on("file") == []
    assert [img.media_type for img in result.images] == ["image/png", "image/png"]
    assert image_dimensions(result.images[0].data) == (256, 256)


# --------------------------------------------------------------------------- unusable results


def test_all_images_flagged_nsfw_is_a_moderation_block(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_stub.nsfw = True
    with pytest.raises(ModerationBlocked):
        fal_provider.generate(_call(provider_model="fal-ai/flux/schnell", n=2, output_format="png"))
    assert fal_stub.on("file") == []  # flagged images are not even downloaded


def test_flagged_images_among_good_ones_are_dropped_with_a_warning(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.nsfw = [True, False, False]
    result = fal_provider.generate(_call(provider_model="fal-ai/flux/schnell", n=3, output_format="jpeg"))
    assert len(result.images) == 2
    assert result.warnings == [
        "1 image(s) flagged by fal's safety checker were removed",
        "fal returned 2 of 3 images",
    ]
    assert len(fal_stub.on("file")) == 2


@pytest.mark.parametrize(
    "overrides",
    [{"images": []}, {"images": "nope"}, {"images": [{"content_type": "image/png"}]}],
)
def test_results_without_images_are_provider_errors(
    fal_provider: FalProvider, fal_stub: FalStub, overrides: dict[str, Any]
) -> None:
    fal_stub.result_overrides = overrides
    with pytest.raises(ProviderError):
        fal_provider.generate(_call())


def test_a_result_file_that_is_not_an_image_is_a_provider_error(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.inject(
        "http", on="file", status=200, body=b"<html>oops</html>", headers={"Content-Type": "image/png"}
    )
    with pytest.raises(ProviderError, match="not an image"):
        fal_provider.generate(_call())


def test_a_result_file_that_cannot_be_downloaded_is_a_provider_error(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.inject("http", on="file", status=404, body={"detail": "expired"})
    with pytest.raises(ProviderError, match="HTTP 404"):
        fal_provider.generate(_call())


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("kind", ["unauthorized", "forbidden"])
def test_a_refused_key_names_the_key(fal_provider: FalProvider, fal_stub: FalStub, kind: str) -> None:
    fal_stub.inject(kind, on="submit")
    with pytest.raises(ProviderError) as info:
        fal_provider.generate(_call())
    assert "refused the API key" in info.value.message
    assert "IMAGEMINT_FAL_KEY" in info.value.message
    assert "stub-key-secret" not in info.value.message


def _budgeted(client: FalQueue, retry_budget_s: float, timeout_s: float = 10.0) -> FalProvider:
    return FalProvider(
        client,
        timeout_s=timeout_s,
        retry_budget_s=retry_budget_s,
        poll_interval_s=0.01,
        max_poll_interval_s=0.05,
        downloader=HttpDownloader(allow_http=True, timeout=2.0),
    )


def test_a_429_storm_ends_in_rate_limited_within_the_retry_budget(
    fal_queue_client: FalQueue, fal_stub: FalStub
) -> None:
    fal_stub.inject("rate_limit", on="submit", times=None, retry_after=1)
    start = time.monotonic()
    with pytest.raises(RateLimited) as info:
        _budgeted(fal_queue_client, retry_budget_s=2.5).generate(_call())
    elapsed = time.monotonic() - start
    # waits of 1 s (fal's Retry-After) at 0 s and 1 s; a third would end past 2.5 s: give up at ~2 s
    assert len(fal_stub.submissions) == 3
    assert 1.9 <= elapsed < 2.5
    assert info.value.details["retry_after"] == 1
    assert "gave up after 3 attempt(s)" in info.value.message and "retry budget 2.5 s" in info.value.message


def test_a_retry_after_longer_than_the_budget_is_handed_to_the_client_at_once(
    fal_queue_client: FalQueue, fal_stub: FalStub
) -> None:
    fal_stub.inject("rate_limit", on="submit", times=None, retry_after=30)
    start = time.monotonic()
    with pytest.raises(RateLimited) as info:
        _budgeted(fal_queue_client, retry_budget_s=DEFAULT_RETRY_BUDGET_S).generate(_call())
    assert time.monotonic() - start < 0.5
    assert len(fal_stub.submissions) == 1
    assert info.value.details["retry_after"] == 30


def test_the_retry_budget_never_exceeds_the_time_budget(
    fal_queue_client: FalQueue, fal_stub: FalStub
) -> None:
    fal_stub.inject("rate_limit", on="submit", times=None, retry_after=0.3)
    start = time.monotonic()
    with pytest.raises(RateLimited):
        _budgeted(fal_queue_client, retry_budget_s=60, timeout_s=1.0).generate(_call())
    assert time.monotonic() - start < 1.0  # a RateLimited, not the deadline's ProviderTimeout
    assert 3 <= len(fal_stub.submissions) <= 4


def test_a_rate_limit_the_adapter_rides_out_is_no_error(
    fal_queue_client: FalQueue, fal_stub: FalStub
) -> None:
    fal_stub.inject("rate_limit", on="submit", times=2, retry_after=0.1)
    result = _budgeted(fal_queue_client, retry_budget_s=2.0).generate(_call())
    assert len(result.images) == 1
    assert len(fal_stub.submissions) == 3


def test_rate_limited_polls_are_ridden_out_like_other_transient_poll_failures(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.inject("rate_limit", on="status", times=2, retry_after=1)
    assert len(fal_provider.generate(_call()).images) == 1
    assert len(fal_stub.submissions) == 1


@pytest.mark.parametrize(
    ("kind", "on", "params", "fragment"),
    [
        ("server_error", "submit", {}, "HTTP 500"),
        ("not_found", "submit", {}, "does not know the model"),
        ("malformed", "submit", {}, "malformed"),
        ("server_error", "result", {}, "HTTP 500"),
        ("malformed", "result", {}, "malformed"),
        ("http", "status", {"status": 200, "body": {"status": "EXPLODED"}}, "malformed"),
    ],
)
def test_failures_become_provider_errors(
    fal_provider: FalProvider, fal_stub: FalStub, kind: str, on: str, params: dict[str, Any], fragment: str
) -> None:
    fal_stub.inject(kind, on=on, **params)
    with pytest.raises(ProviderError, match=fragment):
        fal_provider.generate(_call())


def test_a_submit_server_error_is_not_retried(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_stub.inject("server_error", on="submit")
    with pytest.raises(ProviderError):
        fal_provider.generate(_call())
    assert len(fal_stub.submissions) == 1


def test_validation_errors_become_invalid_request_with_the_param(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.inject(
        "validation", on="result", param="aspect_ratio", msg="Input should be 'auto', '21:9', ..."
    )
    with pytest.raises(InvalidRequest) as info:
        fal_provider.generate(_call())
    assert info.value.param == "aspect_ratio"
    assert "Input should be 'auto'" in info.value.message
    assert not isinstance(info.value, ModerationBlocked)


def test_content_policy_violations_become_moderation_blocked(
    fal_provider: FalProvider, fal_stub: FalStub
) -> None:
    fal_stub.inject("content_policy", on="result")
    with pytest.raises(ModerationBlocked) as info:
        fal_provider.generate(_call())
    assert info.value.param == "prompt"
    assert "content checker" in info.value.message


def test_a_transient_status_failure_is_ridden_out(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_stub.inject("server_error", on="status", times=2)
    result = fal_provider.generate(_call())
    assert len(result.images) == 1


def test_status_failing_three_times_in_a_row_gives_up(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    fal_stub.inject("server_error", on="status", times=3)
    with pytest.raises(ProviderError, match="HTTP 500"):
        fal_provider.generate(_call())


def _quick(client: FalQueue, timeout_s: float = 0.5) -> FalProvider:
    return FalProvider(
        client,
        timeout_s=timeout_s,
        poll_interval_s=0.01,
        max_poll_interval_s=0.05,
        downloader=HttpDownloader(allow_http=True, timeout=1.0),
    )


def test_a_request_that_never_finishes_is_cancelled_at_the_deadline(
    fal_queue_client: FalQueue, fal_stub: FalStub
) -> None:
    fal_stub.hold = True
    start = time.monotonic()
    with pytest.raises(ProviderTimeout) as info:
        _quick(fal_queue_client).generate(_call())
    assert time.monotonic() - start < 1.5
    [cancel] = fal_stub.on("cancel")
    request_id = next(iter(fal_stub.queue))
    assert cancel.method == "PUT"
    assert cancel.path.endswith(f"/requests/{request_id}/cancel")
    assert fal_stub.queue[request_id].cancelled
    assert info.value.details["request_id"] == request_id
    assert "cancelled" in info.value.message


def test_a_submission_that_hangs_ends_at_the_deadline(fal_queue_client: FalQueue, fal_stub: FalStub) -> None:
    fal_stub.inject("delay", on="submit", seconds=1.5)
    start = time.monotonic()
    with pytest.raises(ProviderTimeout):
        _quick(fal_queue_client, 0.4).generate(_call())
    assert time.monotonic() - start < 1.2


def test_a_hanging_result_fetch_ends_at_the_deadline(fal_queue_client: FalQueue, fal_stub: FalStub) -> None:
    fal_stub.inject("delay", on="result", seconds=1.5)
    start = time.monotonic()
    with pytest.raises(ProviderTimeout):
        _quick(fal_queue_client, 0.5).generate(_call())
    assert time.monotonic() - start < 1.2


def test_an_unreachable_queue_is_a_provider_error(fal_stub: FalStub) -> None:
    with FalStub() as gone:
        dead_url = gone.base_url
    client = FalQueue("stub-key-id:stub-key-secret", queue_url=dead_url, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(ProviderError, match="Could not reach fal"):
        _budgeted(client, retry_budget_s=1.0, timeout_s=1.5).generate(_call())
    assert time.monotonic() - start < 1.5  # connection refusals are retried within the budget only


def test_request_urls_off_the_queue_origin_are_refused(fal_provider: FalProvider, fal_stub: FalStub) -> None:
    """The key goes to every URL the queue answers: one on another origin is refused, not followed."""
    elsewhere = "http://127.0.0.2:9/fal-ai/x/requests/1"
    body = {"request_id": "1", "status_url": elsewhere + "/status", "response_url": elsewhere}
    fal_stub.inject("http", on="submit", status=200, body={**body, "cancel_url": elsewhere + "/cancel"})
    with pytest.raises(ProviderError, match="outside the queue"):
        fal_provider.generate(_call())


# --------------------------------------------------------------------------- configuration


def _settings(**kw: Any) -> Settings:
    return Settings(jobs_table="jobs", accounts_table="accounts", bucket="bucket", **kw)


def test_from_settings_uses_the_key_the_time_budget_and_the_queue_url(fal_stub: FalStub) -> None:
    fal_stub.steps = ()  # completed at the first poll: the default poll interval is not what is tested
    provider = FalProvider.from_settings(
        _settings(fal_key="settings-key:secret", provider_timeout_s=2, fal_queue_url=fal_stub.base_url)
    )
    result = provider.generate(_call())  # the image comes over plain http: the queue is a loopback stub
    assert len(result.images) == 1
    assert fal_stub.on("file")
    assert fal_stub.submissions[0].headers["authorization"] == "Key settings-key:secret"
    assert fal_stub.submissions[0].headers["x-fal-request-timeout"] == "2.0"
    provider = FalProvider.from_settings(
        _settings(provider_timeout_s=2, fal_queue_url=fal_stub.base_url), key="given-key:secret"
    )
    provider.generate(_call())
    assert fal_stub.submissions[1].headers["authorization"] == "Key given-key:secret"
    with pytest.raises(InternalError, match="No fal key"):
        FalProvider.from_settings(_settings())


def test_the_default_queue_is_fals_own_over_https() -> None:
    assert FAL_QUEUE_URL == "https://queue.fal.run"
    assert FalQueue("k:s").queue_url == FAL_QUEUE_URL


def test_an_https_queue_keeps_downloads_https_only(fal_stub: FalStub) -> None:
    """A stub reached as if over https (no local switch): its plain-http image URLs are refused."""
    provider = FalProvider(
        FalQueue("k:s", queue_url=fal_stub.base_url, timeout=2.0),
        timeout_s=2.0,
        poll_interval_s=0.01,
        downloader=result_downloader(_settings(fal_queue_url="https://queue.example.test")),
    )
    with pytest.raises(ProviderError, match="scheme 'http'"):
        provider.generate(_call())
    assert not fal_stub.on("file")


def test_the_default_downloader_takes_only_https() -> None:
    with pytest.raises(ProviderError, match="scheme 'http'"):
        HttpDownloader()("http://127.0.0.1:9/x.png")


def test_build_arguments_is_pure() -> None:
    app, args = build_arguments(_call(provider_model="fal-ai/some/new-model", width=640, height=480, seed=1))
    assert app == "fal-ai/some/new-model"
    assert args == {
        "prompt": "a neon koi pond",
        "num_images": 1,
        "image_size": {"width": 640, "height": 480},
        "output_format": "png",
        "seed": 1,
    }


# --------------------------------------------------------------------------- fal's schemas


def _fal_specs() -> list[Any]:
    from imagemint.domain.registry import MODELS

    return [spec for spec in MODELS.values() if spec.provider == "fal"]


@pytest.mark.parametrize("spec", _fal_specs(), ids=lambda spec: spec.name)
def test_every_fal_model_request_the_registry_allows_is_one_fal_accepts(spec: Any) -> None:
    """Every aspect ratio x resolution x format x n the registry lets through maps to arguments
    that fal's current schema for that app accepts (the stub's schemas, see tests/stubs/fal_stub.py)."""
    from stubs.fal_stub import SCHEMAS, schema_errors

    from imagemint.domain.registry import ratio_dims

    refs = (InputImage(REF_PNG, "image/png"),) if spec.name.endswith("/edit") else ()
    checked = 0
    for ratio in spec.aspect_ratios:
        for resolution in spec.resolutions:
            for fmt in spec.output_formats:
                for n in {1, spec.max_per_call}:
                    width, height = ratio_dims(ratio, resolution)
                    call = _call(
                        provider_model=spec.provider_model,
                        n=n,
                        aspect_ratio=ratio,
                        resolution=resolution,
                        width=width,
                        height=height,
                        output_format=fmt,
                        seed=3,
                        references=refs,
                    )
                    app, args = build_arguments(call)
                    assert app in SCHEMAS
                    assert schema_errors(app, args) == [], (ratio, resolution, fmt, n, args)
                    checked += 1
    assert checked >= len(spec.aspect_ratios)


@pytest.mark.parametrize(
    ("app", "args", "param"),
    [
        ("fal-ai/playground-v25", {"prompt": "p", "output_format": "png"}, "output_format"),
        ("fal-ai/flux/schnell", {"prompt": "p", "output_format": "webp"}, "output_format"),
        ("fal-ai/flux/schnell", {"prompt": "p", "num_images": 5}, "num_images"),
        ("fal-ai/nano-banana-2", {"prompt": "p", "resolution": "8K"}, "resolution"),
        ("fal-ai/nano-banana-2/edit", {"prompt": "p"}, "image_urls"),
        ("fal-ai/ideogram/v3", {"prompt": "p", "rendering_speed": "FAST"}, "rendering_speed"),
    ],
)
def test_the_stub_refuses_what_fal_refuses_at_the_result(
    fal_stub: FalStub, fal_queue_client: FalQueue, app: str, args: dict[str, Any], param: str
) -> None:
    """Straight through the queue client: the adapter itself never sends these."""
    queued = fal_queue_client.submit(app, args)
    while fal_queue_client.status(queued) != "COMPLETED":
        time.sleep(0.01)
    with pytest.raises(FalHTTPError) as info:
        fal_queue_client.result(queued)
    assert info.value.status_code == 422
    [error] = info.value.response.json()["detail"]
    assert error["loc"] == ["body", param]
