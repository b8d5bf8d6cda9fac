"""OpenAIProvider through the real openai SDK against the OpenAI Images stub.

Asserts the exact parameters each model gets on the wire (JSON for
generations, multipart for edits), that nothing OpenAI refuses today is ever
sent (a shut-down model, ``response_format``, ``style``), and that every fault
OpenAI can answer becomes the right domain error. The stub behaves like
OpenAI's Images API on 2026-11-28 (its own rules: see ``stubs/openai_stub.py``),
which the last section checks through the SDK itself.
"""

from __future__ import annotations

import base64
import time
from email.utils import formatdate
from typing import Any

import openai
import pytest
from stubs import make_image
from stubs.openai_stub import OpenAIStub

from imagemint.adapters.providers.openai_provider import OpenAIProvider
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

PNG_A, _ = make_image(32, 32, "png", 0)
PNG_B, _ = make_image(32, 32, "png", 1)
MASK, _ = make_image(32, 32, "png", 2)
JPEG, _ = make_image(32, 32, "jpeg", 3)


def _call(**kw: Any) -> ProviderCall:
    values: dict[str, Any] = {
        "prompt": "a lighthouse at dusk",
        "provider_model": "gpt-image-2",
        "n": 1,
        "width": 1024,
        "height": 1024,
        "size": "1024x1024",
    }
    values.update(kw)
    return ProviderCall(**values)


# --------------------------------------------------------------------------- generations


def test_gpt_image_generation_sends_exactly_the_parameters_that_are_set(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    result = openai_provider.generate(
        _call(
            n=2,
            size="1536x864",
            width=1536,
            height=864,
            quality="high",
            background="transparent",
            output_format="webp",
            output_compression=60,
            moderation="low",
        )
    )
    [rec] = openai_stub.requests
    assert rec.route == "generations"
    assert rec.headers["authorization"] == "Bearer sk-stub-test-key"
    assert rec.json == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse at dusk",
        "n": 2,
        "size": "1536x864",
        "quality": "high",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 60,
        "moderation": "low",
    }
    assert "response_format" not in rec.json
    assert len(result.images) == 2
    assert {img.media_type for img in result.images} == {"image/webp"}
    assert (result.images[0].width, result.images[0].height) == (1536, 864)
    assert result.images[0].data != result.images[1].data
    assert result.model == "gpt-image-2"
    assert result.prompt_tokens > 0 and result.completion_tokens == 2 * 1056
    assert result.input_image_tokens == 0  # a generation has no image input
    assert result.metadata["provider"] == "openai"
    assert result.metadata["output_format"] == "webp"
    assert result.warnings == []


def test_a_plain_gpt_image_call_sends_no_optional_parameter(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    result = openai_provider.generate(_call())
    assert openai_stub.last.json == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": "1024x1024",
        "output_format": "png",
    }
    [image] = result.images
    assert image.media_type == "image/png"
    assert (image.width, image.height) == (1024, 1024)
    assert image.data.startswith(b"\x89PNG")


def test_size_falls_back_to_width_and_height(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_provider.generate(_call(size=None, width=1024, height=1536))
    assert openai_stub.last.json["size"] == "1024x1536"


@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2", "gpt-image-1"])
def test_a_shut_down_model_is_never_sent(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub, model: str
) -> None:
    """The registry runs such requests on a live model; this is the provider's last guard."""
    with pytest.raises(InvalidRequest) as info:
        openai_provider.generate(_call(provider_model=model))
    assert info.value.param == "model" and "shut down" in info.value.message
    assert openai_stub.requests == []


def test_style_is_never_sent(openai_provider: OpenAIProvider, openai_stub: OpenAIStub) -> None:
    result = openai_provider.generate(_call(style="vivid", quality="high"))
    assert "style" not in openai_stub.last.json and "response_format" not in openai_stub.last.json
    assert openai_stub.last.json["quality"] == "high"
    assert result.warnings == ["style is not a parameter of gpt-image-2; it was not sent"]


def test_xhigh_reaches_gpt_image_2_5(openai_provider: OpenAIProvider, openai_stub: OpenAIStub) -> None:
    result = openai_provider.generate(_call(provider_model="gpt-image-2.5-flare", quality="xhigh"))
    assert (
        openai_stub.last.json["quality"] == "xhigh"
        and openai_stub.last.json["model"] == "gpt-image-2.5-flare"
    )
    assert len(result.images) == 1


def test_extra_parameters_pass_only_when_the_endpoint_takes_them(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_provider.generate(
        _call(extra={"user": "acct-1", "safety_identifier": "h-1", "input_fidelity": "high", "bogus": 1})
    )
    params = openai_stub.last.json
    assert params["user"] == "acct-1" and params["safety_identifier"] == "h-1"
    assert "input_fidelity" not in params and "bogus" not in params


# --------------------------------------------------------------------------- edits


def test_edit_with_two_images_and_a_mask_goes_as_multipart(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    result = openai_provider.generate(
        _call(
            prompt="put both in one scene",
            references=(InputImage(PNG_A, "image/png", "image"), InputImage(JPEG, "image/jpeg", "image")),
            mask=InputImage(MASK, "image/png", "mask"),
            quality="medium",
            background="opaque",
            output_format="jpeg",
            output_compression=80,
            moderation="low",
            extra={"input_fidelity": "high"},
        )
    )
    [rec] = openai_stub.requests
    assert rec.route == "edits"
    assert rec.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert rec.json is None
    assert openai_stub.params(rec) == {
        "model": "gpt-image-2",
        "prompt": "put both in one scene",
        "n": "1",
        "size": "1024x1024",
        "quality": "medium",
        "background": "opaque",
        "output_format": "jpeg",
        "output_compression": "80",
        "input_fidelity": "high",
    }
    images = [f for f in rec.files if f.field == "image[]"]
    masks = [f for f in rec.files if f.field == "mask"]
    assert [(f.filename, f.content_type, f.data) for f in images] == [
        ("image-1.png", "image/png", PNG_A),
        ("image-2.jpg", "image/jpeg", JPEG),
    ]
    assert [(f.filename, f.content_type, f.data) for f in masks] == [("mask.png", "image/png", MASK)]
    [image] = result.images
    assert image.media_type == "image/jpeg"
    assert result.warnings == ["moderation is not a parameter of OpenAI image edits; it was not sent"]


def test_edit_with_one_image_sends_the_image_field(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_provider.generate(_call(references=(InputImage(PNG_B, "image/png"),)))
    rec = openai_stub.last
    assert rec.route == "edits"
    assert [(f.field, f.data) for f in rec.files] == [("image", PNG_B)]


def test_an_edit_reports_its_image_input_tokens(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    result = openai_provider.generate(_call(references=(InputImage(PNG_A, "image/png"),)))
    assert result.input_image_tokens == 65 and result.prompt_tokens > 65  # the stub: 65 per image


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"references": (InputImage(PNG_A, "image/png"),), "mask": InputImage(JPEG, "image/jpeg")}, "mask"),
        ({"mask": InputImage(MASK, "image/png")}, "image"),
        (
            {
                "provider_model": "dall-e-2",
                "references": (InputImage(PNG_A, "image/png"), InputImage(PNG_B, "image/png")),
            },
            "model",
        ),
    ],
)
def test_edits_openai_cannot_take_are_refused_before_any_request(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub, kw: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_provider.generate(_call(**kw))
    assert info.value.param == param
    assert openai_stub.requests == []


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("kind", ["moderation", "content_policy"])
def test_safety_refusals_become_moderation_blocked(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub, kind: str
) -> None:
    openai_stub.inject(kind)
    with pytest.raises(ModerationBlocked) as info:
        openai_provider.generate(_call())
    assert "safety system" in info.value.message


def test_a_moderation_block_on_an_edit_too(openai_provider: OpenAIProvider, openai_stub: OpenAIStub) -> None:
    openai_stub.inject("moderation", on="edits")
    with pytest.raises(ModerationBlocked):
        openai_provider.generate(_call(references=(InputImage(PNG_A, "image/png"),)))


def test_other_bad_requests_become_invalid_request_with_openais_param(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_stub.inject("bad_request", param="size")
    with pytest.raises(InvalidRequest) as info:
        openai_provider.generate(_call(size="999x999"))
    assert not isinstance(info.value, ModerationBlocked)
    assert info.value.param == "size"
    assert "Invalid value: '999x999'" in info.value.message


def test_a_refused_key_names_the_cause_without_echoing_the_key(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_stub.inject("unauthorized")
    with pytest.raises(ProviderError) as info:
        openai_provider.generate(_call())
    assert "refused the API key" in info.value.message
    assert "invalid_api_key" in info.value.message
    assert "sk-" not in info.value.message


def test_organisation_verification_is_explained(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_stub.inject("org_verification")
    with pytest.raises(ProviderError) as info:
        openai_provider.generate(_call())
    message = info.value.message
    assert "HTTP 403" in message
    assert "organisation must be verified" in message
    assert "Your organization must be verified to use the model `gpt-image-2`" in message
    assert info.value.details["status"] == 403


def test_rate_limits_carry_retry_after(openai_provider: OpenAIProvider, openai_stub: OpenAIStub) -> None:
    openai_stub.inject("rate_limit", retry_after=12)
    with pytest.raises(RateLimited) as info:
        openai_provider.generate(_call())
    assert info.value.details["retry_after"] == 12
    assert len(openai_stub.requests) == 1  # max_retries=0: nothing retried behind our back


def test_rate_limit_retry_after_as_an_http_date(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_stub.inject(
        "http",
        status=429,
        body={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
        headers={"Retry-After": formatdate(time.time() + 20, usegmt=True)},
    )
    with pytest.raises(RateLimited) as info:
        openai_provider.generate(_call())
    assert 18 <= info.value.details["retry_after"] <= 21


def test_rate_limit_without_retry_after_defaults_to_30_seconds(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub
) -> None:
    openai_stub.inject(
        "http", status=429, body={"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
    )
    with pytest.raises(RateLimited) as info:
        openai_provider.generate(_call())
    assert info.value.details["retry_after"] == 30


@pytest.mark.parametrize(
    ("kind", "params", "fragment"),
    [
        ("insufficient_quota", {}, "no quota left"),
        ("server_error", {}, "HTTP 500"),
        ("http", {"status": 503, "body": {"error": {"message": "overloaded"}}}, "HTTP 503"),
        ("http", {"status": 404, "body": {"error": {"message": "The model does not exist"}}}, "HTTP 404"),
        ("empty", {}, "no image"),
        ("url_only", {}, "image URL instead of base64"),
        ("not_image", {}, "not an image"),
        ("malformed", {}, "malformed"),
        ("http", {"status": 200, "body": {"created": 1, "data": [{"b64_json": "@@@"}]}}, "invalid base64"),
    ],
)
def test_failures_and_unusable_answers_become_provider_errors(
    openai_provider: OpenAIProvider, openai_stub: OpenAIStub, kind: str, params: dict[str, Any], fragment: str
) -> None:
    openai_stub.inject(kind, **params)
    with pytest.raises(ProviderError, match=fragment):
        openai_provider.generate(_call())


def test_a_slow_answer_becomes_provider_timeout(openai_stub: OpenAIStub) -> None:
    client = openai.OpenAI(
        api_key="sk-test", base_url=openai_stub.base_url + "/v1", max_retries=0, timeout=0.3
    )
    openai_stub.inject("delay", seconds=2.0)
    start = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout):
            OpenAIProvider(client).generate(_call())
    finally:
        client.close()
    assert time.monotonic() - start < 1.5


def test_an_unreachable_endpoint_becomes_provider_error() -> None:
    with OpenAIStub() as stub:
        base = stub.base_url
    client = openai.OpenAI(api_key="sk-test", base_url=base + "/v1", max_retries=0, timeout=1.0)
    try:
        with pytest.raises(ProviderError, match="Could not reach OpenAI"):
            OpenAIProvider(client).generate(_call())
    finally:
        client.close()


# --------------------------------------------------------------------------- from_settings


def _settings(**kw: Any) -> Settings:
    return Settings(jobs_table="jobs", accounts_table="accounts", bucket="bucket", **kw)


def test_from_settings_builds_a_client_on_the_configured_endpoint(openai_stub: OpenAIStub) -> None:
    provider = OpenAIProvider.from_settings(
        _settings(openai_base_url=openai_stub.base_url + "/v1", provider_timeout_s=2),
        api_key="sk-from-settings",
    )
    client = provider.client
    assert client.max_retries == 0
    assert client.timeout.read == 2 and client.timeout.connect == 2
    result = provider.generate(_call())
    assert len(result.images) == 1
    assert openai_stub.last.headers["authorization"] == "Bearer sk-from-settings"
    client.close()


def test_from_settings_reads_the_key_from_settings_and_needs_one(openai_stub: OpenAIStub) -> None:
    provider = OpenAIProvider.from_settings(
        _settings(openai_api_key="sk-in-settings", openai_base_url=openai_stub.base_url + "/v1")
    )
    provider.generate(_call())
    assert openai_stub.last.headers["authorization"] == "Bearer sk-in-settings"
    with pytest.raises(InternalError, match="No OpenAI API key"):
        OpenAIProvider.from_settings(_settings())


def test_stub_answers_are_real_images_of_the_requested_size(
    openai_client: openai.OpenAI, openai_stub: OpenAIStub
) -> None:
    response = openai_client.images.generate(
        model="gpt-image-2", prompt="x", size="1536x864", output_format="png"
    )
    raw = base64.b64decode(response.data[0].b64_json or "")
    from imagemint.adapters.net.fetch import image_dimensions

    assert image_dimensions(raw) == (1536, 864)
    assert response.usage is not None and response.usage.output_tokens == 1056


# --------------------------------------------------------------------------- the stub is today's OpenAI


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-2", "dall-e-3", "gpt-image-9"])
def test_stub_refuses_shut_down_and_unknown_models(openai_client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.images.generate(model=model, prompt="x")
    assert info.value.code == "model_not_found"


def test_stub_shuts_the_december_models_down_on_their_date(openai_stub: OpenAIStub) -> None:
    from datetime import date

    openai_stub.today = date(2026, 11, 30)
    assert openai_stub.status_of("gpt-image-1.5") == "live"
    openai_stub.today = date(2026, 12, 1)
    assert {
        openai_stub.status_of(m) for m in ("gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest")
    } == {"shutdown"}
    assert openai_stub.status_of("gpt-image-2") == "live"


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"response_format": "b64_json"}, "response_format"),
        ({"response_format": "url"}, "response_format"),
        ({"style": "vivid"}, "style"),
        ({"size": "1530x860"}, "size"),
        ({"size": "3072x1008"}, "size"),
        ({"size": "4096x2304"}, "size"),
        ({"size": "512x512"}, "size"),
        ({"quality": "xhigh"}, "quality"),
        ({"quality": "hd"}, "quality"),
        ({"n": 11}, "n"),
    ],
)
def test_stub_refuses_what_gpt_image_2_does_not_take(
    openai_client: openai.OpenAI, kw: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.images.generate(model="gpt-image-2", prompt="x", **kw)
    assert info.value.param == param


def test_stub_takes_2_5_qualities_and_2_6_standard_sizes_only(openai_client: openai.OpenAI) -> None:
    assert openai_client.images.generate(model="gpt-image-2.5-flare", prompt="x", quality="max").data
    assert openai_client.images.generate(model="gpt-image-2.6-flare", prompt="x", size="1536x1024").data
    with pytest.raises(openai.BadRequestError):
        openai_client.images.generate(model="gpt-image-2.6-flare", prompt="x", size="1536x864")
