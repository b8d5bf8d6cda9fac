"""The four dialects through each function's real ``lambda_handler``, on in-memory deps.

Every validation rule of every dialect is checked for its status and the
dialect's exact error shape; successes are checked for their wire shape, their
job record and the stored images. A teardown check holds for every test here:
no job is left unfinished, a SUCCEEDED (or PARTIAL: provenance failed after
generation) job's images exist in the image store, and a FAILED job carries
its error.
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from events import (
    EVENTS_DIR,
    PLACEHOLDER_JOB_ID,
    Reply,
    bearer,
    data_uri,
    http_event,
    invoke,
    load_event,
    multipart,
    png,
    rebuild,
)
from imagemint.domain import auth
from imagemint.domain.models import Account, Job
from imagemint.wiring import Deps

TEMPLATE_IDS = {
    "artist-caption-bedroom",
    "artist-caption-outside",
    "artist-caption-stage",
    "album-record-store",
}

LEGACY = ("legacy_image", "/api/image/generate")
CONTENT = ("content_image", "/api/content/image")
GENERATIONS = ("openai_images", "/v1/images/generations")
API_GENERATIONS = ("openai_images", "/api/images/generations")
EDITS = ("openai_images", "/v1/images/edits")
AGENTAI = ("agentai_image", "/action/generate_image")

NOT_AN_IMAGE = b"this is a text file, not an image\n"
BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00garbage after the signature" * 8


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def jobs_settle(deps: Deps) -> Any:
    """After every test: each job finished; its images are stored (SUCCEEDED, PARTIAL) or it has an error."""
    yield
    for job in deps.jobs.jobs.values():  # type: ignore[attr-defined]
        assert job.status in ("SUCCEEDED", "PARTIAL", "FAILED"), f"job {job.job_id} left {job.status}"
        if (
            job.status == "PARTIAL"
        ):  # provenance failed after generation: the images are kept, a warning says so
            assert any("failed" in w for w in job.result["warnings"])
        if job.status in ("SUCCEEDED", "PARTIAL"):
            images = job.result["images"]
            assert images
            for img in images:
                head = deps.images.head(img["key"])
                assert head is not None, f"{img['key']} is not in the image store"
                assert head["size"] == img["bytes"]
        else:
            assert job.error and job.error.get("code") and job.error.get("message")


def post(route: tuple[str, str], headers: dict[str, Any] | None = None, **body: Any) -> Reply:
    function, path = route
    return invoke(function, http_event("POST", path, headers=headers, **body))


def legacy(query: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
    function, path = LEGACY
    return invoke(function, http_event("GET", path, query=query, headers=headers))


def templates(template_id: str | None = None) -> Reply:
    if template_id is None:
        return invoke("content_templates", http_event("GET", "/api/content/templates"))
    path = f"/api/content/templates/{template_id}"
    return invoke("content_templates", http_event("GET", path, path_params={"id": template_id}))


def jobs(deps: Deps) -> list[Job]:
    return list(deps.jobs.jobs.values())  # type: ignore[attr-defined]


def only_job(deps: Deps, *status: str) -> Job:
    (job,) = jobs(deps)
    assert job.status in (status or ("SUCCEEDED",)), (job.status, job.error)
    return job


def stored_key(url: str) -> str:
    """The image-store key a signed URL of the in-memory store points at."""
    parts = urlsplit(url)
    assert parts.scheme == "memory" and parts.netloc == "bucket", url
    return parts.path.lstrip("/")


def follow_file_url(url: str) -> str:
    """Resolve one of our durable ``/api/files/...`` URLs through the files function; the store key."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "https://api.test", url
    _, api, files, job_id, name = parts.path.split("/")
    assert (api, files) == ("api", "files")
    reply = invoke("files", http_event("GET", parts.path, path_params={"job_id": job_id, "name": name}))
    assert reply.status == 302, reply.text
    return stored_key(reply.headers["location"])


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_legacy_error(reply: Reply, status: int, message: str) -> None:
    assert reply.status == status, reply.text
    assert reply.json == {"error": message}


def assert_content_error(reply: Reply, status: int, field: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.text
    body = reply.json
    assert isinstance(body["error"], str) and body["error"]
    if field is None:
        assert set(body) == {"error"}
    else:
        assert set(body) == {"error", "field"} and body["field"] == field
    return body


def assert_openai_error(
    reply: Reply, status: int, param: str | None = None, code: str | None = None, etype: str | None = None
) -> dict[str, Any]:
    assert reply.status == status, reply.text
    body = reply.json
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["param"] == param
    assert err["type"] == (etype or ("server_error" if status >= 500 else "invalid_request_error"))
    assert err["code"] == code
    return err


def assert_agentai_error(reply: Reply, status: int, param: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.text
    body = reply.json
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    if param is None:
        assert set(body) == {"status", "error"}
    else:
        assert set(body) == {"status", "error", "param"} and body["param"] == param
    return body


@pytest.fixture
def other_account(deps: Deps) -> tuple[Account, str]:
    return auth.create_account(deps.accounts, deps.settings, name="Someone else", credits=1000)


@pytest.fixture
def small_bodies(deps: Deps) -> int:
    limit = 256
    deps.settings = deps.settings.model_copy(update={"max_body_bytes": limit})
    return limit


# --------------------------------------------------------------------------- legacy


def test_legacy_missing_prompt(deps, account):
    acc, _ = account
    assert_legacy_error(legacy({"account_id": acc.account_id}), 400, "Prompt is required")


def test_legacy_whitespace_only_prompt(deps, account):
    acc, _ = account
    assert_legacy_error(legacy({"prompt": " \t\n ", "account_id": acc.account_id}), 400, "Prompt is required")


def test_legacy_prompt_of_1001_characters_is_too_long(deps, account):
    acc, _ = account
    assert_legacy_error(
        legacy({"prompt": "a" * 1001, "account_id": acc.account_id}), 400, "Prompt is too long"
    )


def test_legacy_prompt_of_1000_characters_is_accepted(deps, account):
    acc, _ = account
    assert legacy({"prompt": "a" * 1000, "account_id": acc.account_id}).status == 200


def test_legacy_missing_account_id(deps):
    assert_legacy_error(legacy({"prompt": "a cat"}), 400, "account_id is required")


def test_legacy_account_id_must_be_a_uuid(deps):
    assert_legacy_error(
        legacy({"prompt": "a cat", "account_id": "acct-42"}), 400, "account_id must be a UUID"
    )


def test_legacy_unknown_account_is_404(deps):
    reply = legacy({"prompt": "a cat", "account_id": str(uuid.uuid4())})
    assert_legacy_error(reply, 404, "Account not found")
    assert jobs(deps) == []


def test_legacy_key_of_another_account_is_403(deps, account, other_account):
    acc, _ = account
    _, other_key = other_account
    reply = legacy({"prompt": "a cat", "account_id": acc.account_id}, {"x-api-key": other_key})
    assert_legacy_error(reply, 403, "API key does not belong to this account")
    assert jobs(deps) == []


def test_legacy_invalid_key_is_401(deps, account):
    acc, _ = account
    reply = legacy({"prompt": "a cat", "account_id": acc.account_id}, bearer("im_sk_not-a-real-key"))
    assert_legacy_error(reply, 401, "Invalid API key")


def test_legacy_require_key_setting_refuses_keyless_calls(deps, account):
    deps.settings = deps.settings.model_copy(update={"legacy_require_key": True})
    acc, key = account
    reply = legacy({"prompt": "a cat", "account_id": acc.account_id})
    assert reply.status == 401 and set(reply.json) == {"error"}
    assert legacy({"prompt": "a cat", "account_id": acc.account_id}, {"x-api-key": key}).status == 200


@pytest.mark.parametrize("with_key", [False, True], ids=["keyless", "x-api-key"])
def test_legacy_success_shape(deps, account, with_key):
    acc, key = account
    headers = {"x-api-key": key} if with_key else None
    reply = legacy({"prompt": "  tuxedo cat playing the trumpet  ", "account_id": acc.account_id}, headers)
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body) >= {
        "images",
        "warnings",
        "responses",
        "providerMetadata",
        "usage",
        "imageUrl",
        "arweaveResult",
        "moment",
    }
    (image,) = body["images"]
    assert set(image) == {"base64", "uint8Array", "mediaType"} and image["mediaType"] == "image/png"
    data = base64.b64decode(image["base64"])
    assert bytes(image["uint8Array"]) == data
    assert decode(data).size == (1024, 1024)
    assert body["providerMetadata"] == {"model": "gpt-image-2", "size": "1024x1024"}  # the live default
    assert body["responses"][0]["modelId"] == "gpt-image-2"
    assert set(body["usage"]) == {"promptTokens", "completionTokens", "totalTokens", "images", "costUsd"}
    assert all(isinstance(w, str) for w in body["warnings"])
    job = only_job(deps, "SUCCEEDED", "PARTIAL")  # legacy always asks for archive + mint
    # the cost of what was generated, as recorded on the job (gpt-image-2, 1024x1024, default quality)
    assert body["usage"]["images"] == 1 and body["usage"]["costUsd"] == job.result["cost_usd"] > 0
    if job.status == "PARTIAL":
        assert (body["imageUrl"], body["arweaveResult"], body["moment"]) == (None, None, None)
        assert any("Arweave" in w for w in body["warnings"])
    else:
        assert body["imageUrl"] and body["arweaveResult"]["id"] and body["moment"]["chainId"]
    assert (job.account_id, job.dialect, job.request["prompt"]) == (
        acc.account_id,
        "legacy",
        "tuxedo cat playing the trumpet",
    )
    assert deps.images.get(job.result["images"][0]["key"]) == data


# --------------------------------------------------------------------------- content: auth and body


def test_content_without_auth_is_401(deps):
    assert_content_error(post(CONTENT, json_body={"prompt": "x"}), 401)


def test_content_with_both_auth_headers_is_401(deps, account):
    _, key = account
    reply = post(CONTENT, {"x-api-key": key, **bearer(key)}, json_body={"prompt": "x"})
    assert_content_error(reply, 401)
    assert jobs(deps) == []


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": "im_sk_wrong"}, {"authorization": "Bearer im_sk_wrong"}, {"authorization": "Basic abc"}],
    ids=["bad-x-api-key", "bad-bearer", "not-bearer"],
)
def test_content_bad_key_is_401(deps, account, headers):
    assert_content_error(post(CONTENT, headers, json_body={"prompt": "x"}), 401)


@pytest.mark.parametrize("auth_header", ["x-api-key", "authorization"])
def test_content_accepts_either_auth_header(deps, account, auth_header):
    _, key = account
    headers = {"x-api-key": key} if auth_header == "x-api-key" else bearer(key)
    assert post(CONTENT, headers, json_body={"prompt": "a red guitar"}).status == 200


def test_content_malformed_json_is_400(deps, account):
    _, key = account
    reply = post(CONTENT, {"x-api-key": key, "content-type": "application/json"}, body='{"prompt": ')
    assert_content_error(reply, 400)


@pytest.mark.parametrize("raw", ["[1, 2]", '"a prompt"', "42", "null"])
def test_content_non_object_json_is_400(deps, account, raw):
    _, key = account
    reply = post(CONTENT, {"x-api-key": key, "content-type": "application/json"}, body=raw)
    assert_content_error(reply, 400)


def test_content_empty_body_uses_the_defaults(deps, account):
    _, key = account
    reply = post(CONTENT, {"x-api-key": key})
    assert reply.status == 200, reply.text
    job = only_job(deps)
    assert job.request["model"] == "fal-ai/nano-banana-2"
    assert job.request["n"] == 1 and job.request["prompt"]


# --------------------------------------------------------------------------- content: fields

CONTENT_INVALID = [
    ({"colour": "red"}, "colour"),
    ({"template": "no-such-template"}, "template"),
    ({"template": 7}, "template"),
    ({"prompt": 42}, "prompt"),
    ({"prompt": "p" * 5001}, "prompt"),
    ({"num_images": 0}, "num_images"),
    ({"num_images": 5}, "num_images"),
    ({"num_images": "2"}, "num_images"),
    ({"num_images": True}, "num_images"),
    ({"num_images": 1.5}, "num_images"),
    ({"aspect_ratio": "7:3"}, "aspect_ratio"),
    ({"aspect_ratio": 1.5}, "aspect_ratio"),
    ({"resolution": "8K"}, "resolution"),
    ({"resolution": "1k"}, "resolution"),
    ({"resolution": []}, "resolution"),
    ({"model": "DALL-E 3"}, "model"),  # agent.ai's name, not a model id
    ({"model": "dall-e-3"}, "model"),
    ({"model": "fal-ai/unknown"}, "model"),
    ({"model": 3}, "model"),
    ({"reference_image_url": "not a uri"}, "reference_image_url"),
    ({"reference_image_url": "ftp://example.com/a.png"}, "reference_image_url"),
    ({"reference_image_url": 12}, "reference_image_url"),
    ({"reference_image_url": ""}, "reference_image_url"),
    ({"images": "https://example.com/a.png"}, "images"),
    ({"images": {"0": "https://example.com/a.png"}}, "images"),
    ({"images": ["not a uri"]}, "images"),
    ({"images": [data_uri(png())] * 9}, "images"),
    ({"archive": "yes"}, "archive"),
    ({"archive": 1}, "archive"),
    ({"mint": "true"}, "mint"),
]


@pytest.mark.parametrize(
    ("body", "field"), CONTENT_INVALID, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CONTENT_INVALID)]
)
def test_content_invalid_field_is_400_naming_it(deps, account, body, field):
    _, key = account
    assert_content_error(post(CONTENT, {"x-api-key": key}, json_body=body), 400, field)
    assert jobs(deps) == []


def test_content_success_three_images_have_durable_urls(deps, account):
    acc, key = account
    reply = post(
        CONTENT, {"x-api-key": key}, json_body={"prompt": "a red guitar on a chair", "num_images": 3}
    )
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body) == {"imageUrl", "images"}
    assert len(body["images"]) == 3 and len(set(body["images"])) == 3
    assert body["imageUrl"] == body["images"][0]
    job = only_job(deps)
    assert job.account_id == acc.account_id and job.dialect == "content"
    stored = [img["key"] for img in job.result["images"]]
    for url, key_ in zip(body["images"], stored, strict=True):
        assert url.startswith(f"https://api.test/api/files/{job.job_id}/")
        assert follow_file_url(url) == key_
        assert decode(deps.images.get(key_)).format == "PNG"


def test_content_geometry_follows_aspect_ratio_and_resolution(deps, account):
    _, key = account
    body = {"prompt": "a skyline", "aspect_ratio": "16:9", "resolution": "0.5K"}
    reply = post(CONTENT, {"x-api-key": key}, json_body=body)
    assert reply.status == 200, reply.text
    assert decode(deps.images.get(follow_file_url(reply.json["imageUrl"]))).size == (512, 288)


def test_content_template_prompt_and_style_are_used_without_a_prompt(deps, account):
    _, key = account
    template = templates("album-record-store").json
    assert post(CONTENT, {"x-api-key": key}, json_body={"template": "album-record-store"}).status == 200
    prompt = only_job(deps).request["prompt"]
    assert prompt.startswith(template["image"]["prompt"])
    for section, rules in template["image"]["style_rules"].items():
        assert section in prompt
        for value in rules.values():
            assert value in prompt


def test_content_callers_prompt_overrides_the_templates(deps, account):
    _, key = account
    template = templates("artist-caption-stage").json
    body = {"template": "artist-caption-stage", "prompt": "a drummer in a tiny club"}
    assert post(CONTENT, {"x-api-key": key}, json_body=body).status == 200
    prompt = only_job(deps).request["prompt"]
    assert prompt.startswith("a drummer in a tiny club")
    assert template["image"]["prompt"] not in prompt
    assert template["image"]["style_rules"]["lighting"]["mood"] in prompt


def test_content_reference_image_runs_the_edit_variant(deps, account):
    _, key = account
    body = {"prompt": "the same cat, in space", "reference_image_url": data_uri(png(32, 32))}
    assert post(CONTENT, {"x-api-key": key}, json_body=body).status == 200
    assert only_job(deps).result["model"] == "fal-ai/nano-banana-2/edit"


def test_content_reference_the_provider_cannot_decode_fails_the_job(deps, account):
    _, key = account
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    body = {"prompt": "x", "reference_image_url": data_uri(gif.getvalue(), "image/gif")}
    reply = post(CONTENT, {"x-api-key": key}, json_body=body)
    assert_content_error(reply, 400, "reference_image_url")
    job = only_job(deps, "FAILED")
    assert job.error["code"] == "input_refused" and job.error["param"] == "reference_image_url"


# --------------------------------------------------------------------------- content templates


def test_templates_list_shape(deps):
    reply = templates()
    assert reply.status == 200
    body = reply.json
    assert set(body) == {"status", "templates"} and body["status"] == "success"
    assert all(set(t) == {"id", "description"} for t in body["templates"])
    assert {t["id"] for t in body["templates"]} == TEMPLATE_IDS
    assert all(isinstance(t["description"], str) and t["description"] for t in body["templates"])


@pytest.mark.parametrize("template_id", sorted(TEMPLATE_IDS))
def test_one_template_full_shape(deps, template_id):
    reply = templates(template_id)
    assert reply.status == 200
    body = reply.json
    assert body["id"] == template_id and isinstance(body["description"], str)
    image = body["image"]
    assert isinstance(image["prompt"], str) and image["prompt"]
    assert isinstance(image["reference_images"], list)
    assert image["style_rules"] and all(
        isinstance(rules, dict) and all(isinstance(v, str) for v in rules.values())
        for rules in image["style_rules"].values()
    )


def test_unknown_template_is_404(deps):
    reply = templates("no-such-template")
    assert reply.status == 404
    assert reply.json == {"error": "Template not found"}


# --------------------------------------------------------------------------- openai: errors


def test_openai_without_auth_is_401(deps):
    reply = post(GENERATIONS, json_body={"prompt": "x"})
    assert_openai_error(reply, 401, code="invalid_api_key")


def test_openai_x_api_key_is_not_its_auth(deps, account):
    _, key = account
    assert_openai_error(
        post(GENERATIONS, {"x-api-key": key}, json_body={"prompt": "x"}), 401, code="invalid_api_key"
    )


def test_openai_bad_key_is_401(deps, account):
    reply = post(GENERATIONS, bearer("im_sk_wrong"), json_body={"prompt": "x"})
    assert_openai_error(reply, 401, code="invalid_api_key")


def test_openai_malformed_json_is_400(deps, account):
    _, key = account
    reply = post(GENERATIONS, {**bearer(key), "content-type": "application/json"}, body="{not json")
    assert_openai_error(reply, 400)


OPENAI_INVALID = [
    ({}, "prompt", None),
    ({"prompt": "   "}, "prompt", None),
    ({"prompt": 5}, "prompt", None),
    ({"prompt": "x", "n": 0}, "n", None),
    ({"prompt": "x", "n": 11}, "n", None),
    ({"prompt": "x", "n": "two"}, "n", None),
    ({"prompt": "x", "response_format": "jpeg"}, "response_format", None),
    ({"prompt": "x", "model": "dall-e-2", "size": "1792x1024"}, "size", "invalid_size"),
    ({"prompt": "x", "model": "dall-e-3", "n": 2}, "n", None),
    ({"prompt": "x", "model": "dall-e-3", "quality": "low"}, "quality", None),
    ({"prompt": "x", "model": "dall-e-2", "style": "vivid"}, "style", None),
    ({"prompt": "x", "model": "dall-e-3", "style": "cartoon"}, "style", None),
    ({"prompt": "x", "model": "gpt-image-1", "size": "256x256"}, "size", "invalid_size"),
    ({"prompt": "x", "model": "gpt-image-1", "output_format": "gif"}, "output_format", None),
    ({"prompt": "x", "model": "dall-e-2", "output_format": "webp"}, "output_format", None),
    ({"prompt": "x", "model": "gpt-image-1", "output_compression": 101}, "output_compression", None),
    ({"prompt": "x", "model": "gpt-image-1", "output_compression": -1}, "output_compression", None),
    ({"prompt": "x", "model": "gpt-image-1", "background": "glitter"}, "background", None),
    ({"prompt": "x", "model": "no-such-model"}, "model", None),
    ({"prompt": "x", "size": 1024}, "size", "invalid_size"),
    ({"prompt": "x", "temperature": 0.2}, "temperature", None),
    ({"prompt": "x", "stream": True}, "stream", None),
    ({"prompt": "x", "archive": "maybe"}, "archive", None),
]


@pytest.mark.parametrize(
    ("body", "param", "code"), OPENAI_INVALID, ids=[f"{p}-{i}" for i, (_, p, _c) in enumerate(OPENAI_INVALID)]
)
def test_openai_invalid_parameter_is_400_naming_it(deps, account, body, param, code):
    _, key = account
    assert_openai_error(post(GENERATIONS, bearer(key), json_body=body), 400, param, code)
    assert jobs(deps) == []


def test_openai_unknown_argument_message(deps, account):
    _, key = account
    err = assert_openai_error(post(GENERATIONS, bearer(key), json_body={"prompt": "x", "foo": 1}), 400, "foo")
    assert err["message"] == "Unrecognized request argument supplied: foo"


# --------------------------------------------------------------------------- openai: successes


def test_openai_b64_json_is_a_png_of_the_requested_size(deps, account):
    _, key = account
    body = {
        "model": "gpt-image-2",
        "prompt": "a paper boat",
        "size": "1536x864",
        "response_format": "b64_json",
    }
    reply = post(GENERATIONS, bearer(key), json_body=body)
    assert reply.status == 200, reply.text
    out = reply.json
    assert set(out) >= {"created", "data", "usage"} and isinstance(out["created"], int)
    (item,) = out["data"]
    img = decode(base64.b64decode(item["b64_json"]))
    assert (img.format, img.size) == ("PNG", (1536, 864))
    assert out["size"] == "1536x864" and out["output_format"] == "png" and out["model"] == "gpt-image-2"
    assert set(out["usage"]) >= {"input_tokens", "output_tokens", "total_tokens"}


@pytest.mark.parametrize(
    ("route", "extra"),
    [(GENERATIONS, {"response_format": "url"}), (API_GENERATIONS, {})],
    ids=["v1-asked", "api-default"],
)
def test_openai_url_points_at_the_stored_image_for_an_hour_or_more(deps, account, route, extra):
    """``url``: asked for on /v1 (our extension), the seed's default on /api/images/generations."""
    _, key = account
    body = {"model": "gpt-image-2", "prompt": "a paper boat", "n": 2, **extra}
    reply = post(route, bearer(key), json_body=body)
    assert reply.status == 200, reply.text
    data = reply.json["data"]
    assert len(data) == 2 and all(set(d) == {"url"} for d in data)
    job = only_job(deps)
    assert [stored_key(d["url"]) for d in data] == [img["key"] for img in job.result["images"]]
    assert all(int(urlsplit(d["url"]).query.removeprefix("expires_in=")) >= 3600 for d in data)


@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2"])
def test_openai_response_says_which_model_ran_for_an_alias(deps, account, model):
    _, key = account
    body = {"model": model, "prompt": "a lantern", "response_format": "b64_json"}
    reply = post(GENERATIONS, bearer(key), json_body=body)
    assert reply.status == 200, reply.text
    out = reply.json
    assert out["model"] == "gpt-image-2"
    assert any(model in w and "gpt-image-2" in w for w in out["warnings"])
    job = only_job(deps)
    assert (
        job.model == model and job.result["requested_model"] == model and job.result["model"] == "gpt-image-2"
    )


def test_openai_dall_e_3_wide_size_runs_at_that_size_on_the_live_model(deps, account):
    _, key = account
    body = {
        "model": "dall-e-3",
        "prompt": "a wide beach",
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
    }
    reply = post(GENERATIONS, bearer(key), json_body=body)
    assert reply.status == 200, reply.text
    out = reply.json
    assert out["size"] == "1792x1024" and out["model"] == "gpt-image-2"
    assert "url" in out["data"][0]  # DALL-E answered url by default, as OpenAI did
    assert any("style 'vivid'" in w for w in out["warnings"])
    assert any("'hd'" in w and "'high'" in w for w in out["warnings"])


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-1"])
def test_openai_v1_answers_b64_json_for_gpt_image_models_by_default(deps, account, model):
    """As OpenAI does: the AI SDK and the OpenAI SDKs read data[].b64_json and send no response_format."""
    _, key = account
    reply = post(GENERATIONS, bearer(key), json_body={"model": model, "prompt": "a paper boat", "n": 2})
    assert reply.status == 200, reply.text
    data = reply.json["data"]
    assert len(data) == 2 and all(set(d) == {"b64_json"} for d in data)
    assert decode(base64.b64decode(data[0]["b64_json"])).format == "PNG"


def test_openai_user_and_safety_identifier_reach_the_provider(deps, account):
    _, key = account
    body = {"model": "gpt-image-2", "prompt": "x", "user": "u-1", "safety_identifier": "hash-1"}
    assert post(GENERATIONS, bearer(key), json_body=body).status == 200
    assert only_job(deps).request["extra"] == {"user": "u-1", "safety_identifier": "hash-1"}


def test_openai_edits_with_two_images_and_a_mask(deps, account):
    _, key = account
    ctype, body = multipart(
        {"model": "gpt-image-1", "prompt": "put them side by side", "response_format": "b64_json"},
        [
            ("image[]", "a.png", "image/png", png(16, 16)),
            ("image[]", "b.png", "image/png", png(24, 12, (10, 200, 30, 255))),
            ("mask", "mask.png", "image/png", png(16, 16, (0, 0, 0, 0))),
        ],
    )
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    assert reply.status == 200, reply.text
    assert decode(base64.b64decode(reply.json["data"][0]["b64_json"])).size == (1024, 1024)
    job = only_job(deps)
    refs = job.request["references"]
    assert [r["name"] for r in refs] == ["image[0]", "image[1]"]
    assert all(deps.images.head(r["s3_key"]) is not None for r in refs)
    assert deps.images.head(job.request["mask"]["s3_key"]) is not None


def test_openai_edits_without_an_image_is_400(deps, account):
    _, key = account
    ctype, body = multipart({"model": "gpt-image-1", "prompt": "edit nothing"})
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    assert_openai_error(reply, 400, "image")


def test_openai_edits_with_a_non_image_file_is_400(deps, account):
    _, key = account
    ctype, body = multipart({"prompt": "edit"}, [("image", "notes.txt", "text/plain", NOT_AN_IMAGE)])
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    assert_openai_error(reply, 400, "image[0]", "invalid_image_url")
    assert jobs(deps) == []


def test_openai_edits_as_json_is_415(deps, account):
    _, key = account
    reply = post(EDITS, bearer(key), json_body={"prompt": "x", "image": data_uri(png())})
    assert_openai_error(reply, 415, param="Content-Type", code="unsupported_media_type")


def test_openai_edit_image_without_a_readable_header_is_refused_before_any_job(deps, account):
    """Its size cannot be read from its header: 400 before anything is decoded, stored or charged."""
    _, key = account
    ctype, body = multipart(
        {"model": "gpt-image-1", "prompt": "fix it"}, [("image", "x.png", "image/png", BROKEN_PNG)]
    )
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    err = assert_openai_error(reply, 400, "image[0]", "invalid_image_url")
    assert "header" in err["message"]
    assert jobs(deps) == []


def test_openai_edit_image_the_provider_cannot_decode_fails_the_job(deps, account):
    """A domain failure inside the pipeline: the job is FAILED with the error the client gets."""
    _, key = account
    corrupt = png()[:33] + b"\x00garbage where the image data should be" * 4  # a valid header only
    ctype, body = multipart(
        {"model": "gpt-image-1", "prompt": "fix it"}, [("image", "x.png", "image/png", corrupt)]
    )
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    err = assert_openai_error(reply, 400, "image[0]", "invalid_image_url")
    job = only_job(deps, "FAILED")
    assert job.error["code"] == "input_refused"
    assert (job.error["message"], job.error["param"]) == (err["message"], err["param"])
    assert [t["status"] for t in job.transitions] == ["RUNNING", "FAILED"]


# --------------------------------------------------------------------------- agent.ai


def test_agentai_without_bearer_is_401(deps, account):
    _, key = account
    assert_agentai_error(post(AGENTAI, json_body={"prompt": "x"}), 401)
    assert_agentai_error(post(AGENTAI, {"x-api-key": key}, json_body={"prompt": "x"}), 401)
    assert_agentai_error(post(AGENTAI, bearer("im_sk_wrong"), json_body={"prompt": "x"}), 401)


AGENTAI_INVALID = [
    ({}, "prompt"),
    ({"prompt": "  "}, "prompt"),
    ({"prompt": ["a"]}, "prompt"),
    ({"prompt": "p" * 4001}, "prompt"),
    ({"prompt": "x", "model": "Midjourney"}, "model"),
    ({"prompt": "x", "model": "dall-e-3"}, "model"),
    ({"prompt": "x", "model_style": "anime"}, "model_style"),
    ({"prompt": "x", "model_style": "Photo"}, "model_style"),
    ({"prompt": "x", "model_style": []}, "model_style"),
    ({"prompt": "x", "model": {"DALL-E 3": 1}}, "model"),
    ({"prompt": "x", "model_aspect_ratio": "3:2"}, "model_aspect_ratio"),
    ({"prompt": "x", "model_aspect_ratio": 1}, "model_aspect_ratio"),
]


@pytest.mark.parametrize(
    ("body", "param"), AGENTAI_INVALID, ids=[f"{p}-{i}" for i, (_, p) in enumerate(AGENTAI_INVALID)]
)
def test_agentai_invalid_value_is_400_naming_the_param(deps, account, body, param):
    _, key = account
    out = assert_agentai_error(post(AGENTAI, bearer(key), json_body=body), 400, param)
    assert param.split("_")[-1] in out["error"]
    assert jobs(deps) == []


def test_agentai_malformed_json_is_400(deps, account):
    _, key = account
    assert_agentai_error(post(AGENTAI, {**bearer(key), "content-type": "application/json"}, body="{"), 400)


def test_agentai_success_escapes_the_prompt_in_html(deps, account):
    _, key = account
    prompt = """a cat <script>alert("x")</script> & 'friends'"""
    reply = post(AGENTAI, bearer(key), json_body={"prompt": prompt, "model_aspect_ratio": "1:1"})
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body) == {"status", "response", "metadata"} and body["status"] == 200
    (image,) = body["metadata"]["images"]
    assert image["prompt"] == prompt
    assert "<script>" not in body["response"] and '"x"' not in body["response"]
    escaped = html.escape(prompt, quote=True)
    assert body["response"] == f'<img src="{image["url"]}" alt="{escaped}" /><br />'
    assert follow_file_url(image["url"]) == only_job(deps).result["images"][0]["key"]


def test_agentai_defaults_are_dall_e_3_at_9_16(deps, account):
    _, key = account
    reply = post(AGENTAI, bearer(key), json_body={"prompt": "a tall tower"})
    assert reply.status == 200, reply.text
    job = only_job(deps)
    assert job.request["model"] == "DALL-E 3" and job.request["aspect_ratio"] == "9:16"
    assert job.result["size"] == "864x1536"  # exactly 9:16 on the live default (gpt-image-2)
    assert job.result["model"] == "gpt-image-2"


def test_agentai_style_is_added_to_the_prompt(deps, account):
    _, key = account
    body = {"prompt": "a fox", "model": "FLUX.1 [schnell]", "model_style": "drawing"}
    assert post(AGENTAI, bearer(key), json_body=body).status == 200
    job = only_job(deps)
    assert job.request["prompt"].startswith("a fox ") and job.result["model"] == "fal-ai/flux/schnell"


# --------------------------------------------------------------------------- body limits


def test_content_body_over_the_limit_is_413(deps, account, small_bodies):
    _, key = account
    reply = post(CONTENT, {"x-api-key": key}, json_body={"prompt": "p" * small_bodies})
    assert_content_error(reply, 413)


def test_openai_body_over_the_limit_is_413(deps, account, small_bodies):
    _, key = account
    reply = post(GENERATIONS, bearer(key), json_body={"prompt": "p" * small_bodies})
    assert_openai_error(reply, 413, code="payload_too_large")


def test_openai_edits_body_over_the_limit_is_413(deps, account, small_bodies):
    _, key = account
    ctype, body = multipart({"prompt": "x"}, [("image", "a.png", "image/png", png(64, 64))])
    assert len(body) > small_bodies
    reply = post(EDITS, {**bearer(key), "content-type": ctype}, body=body, is_base64=True)
    assert_openai_error(reply, 413, code="payload_too_large")


def test_agentai_body_over_the_limit_is_413(deps, account, small_bodies):
    _, key = account
    reply = post(AGENTAI, bearer(key), json_body={"prompt": "p" * small_bodies})
    assert_agentai_error(reply, 413)


# --------------------------------------------------------------------------- samples in events/

API_SAMPLES = [
    ("legacy_image.json", "legacy_image"),
    ("content_image.json", "content_image"),
    ("content_templates.json", "content_templates"),
    ("openai_images.json", "openai_images"),
    ("openai_images_edit.json", "openai_images"),
    ("agentai_image.json", "agentai_image"),
]


@pytest.mark.parametrize("name", [*(n for n, _ in API_SAMPLES), "files.json"])
def test_samples_are_what_the_builder_makes(name):
    sample = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    assert rebuild(sample) == sample


@pytest.mark.parametrize(("name", "function"), API_SAMPLES)
def test_samples_run_through_their_handler(deps, account, name, function):
    acc, key = account
    reply = invoke(function, load_event(name, key=key, account_id=acc.account_id))
    assert reply.status == 200, reply.text


def test_files_sample_redirects_to_a_stored_image(deps, account):
    _, key = account
    assert post(GENERATIONS, bearer(key), json_body={"model": "gpt-image-1", "prompt": "x"}).status == 200
    job = only_job(deps)
    reply = invoke("files", load_event("files.json", job_id=job.job_id))
    assert reply.status == 302
    assert stored_key(reply.headers["location"]) == f"images/{job.job_id}/0.png"
    missing = invoke("files", load_event("files.json"))
    assert missing.status == 404 and missing.json == {"error": "File not found"}
    assert PLACEHOLDER_JOB_ID not in deps.jobs.jobs  # type: ignore[attr-defined]


def test_every_api_function_has_a_sample():
    named = {n for n, _ in API_SAMPLES} | {"files.json", "generate_step.json", "record_step.json"}
    assert named <= {p.name for p in Path(EVENTS_DIR).glob("*.json")}


# --------------------------------------------------------------------------- nothing a client sends is a 500

_PNG_URI = data_uri(png())
_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    3,
    4,
    11,
    1.5,
    1e309,
    -(2**70),
    "",
    " ",
    "2",
    "abc",
    "\u0000",
    "\ud800",
    "😀" * 3,
    "<b>&</b>",
    "x" * 6000,
    [],
    [1],
    ["a", None],
    {},
    {"a": {"b": []}},
    "1024x1024",
    "256x256",
    "1536x1024",
    "auto",
    "16:9",
    "9:16",
    "1:1",
    "0.5K",
    "1K",
    "url",
    "b64_json",
    "png",
    "jpeg",
    "webp",
    "gif",
    "dall-e-2",
    "dall-e-3",
    "gpt-image-1",
    "fal-ai/nano-banana-2",
    "fal-ai/flux/schnell",
    "DALL-E 3",
    "Ideogram",
    "Playground v3",
    "photo",
    "drawing",
    "hd",
    "low",
    "standard",
    "vivid",
    "transparent",
    "artist-caption-stage",
    _PNG_URI,
    "data:image/png;base64,!!!!",
    "data:text/html;base64,PGI+",
    "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1/x.png",
    "file:///etc/passwd",
]
_FIELDS = {
    "content_image": [
        "template",
        "prompt",
        "reference_image_url",
        "images",
        "num_images",
        "aspect_ratio",
        "resolution",
        "model",
        "archive",
        "mint",
        "extra",
    ],
    "openai_images": [
        "prompt",
        "model",
        "image",
        "n",
        "size",
        "response_format",
        "quality",
        "style",
        "background",
        "output_format",
        "output_compression",
        "moderation",
        "user",
        "stream",
        "archive",
        "mint",
        "partial_images",
        "unknown",
    ],
    "agentai_image": ["prompt", "model", "model_style", "model_aspect_ratio", "extra"],
}
_CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=zz",
    "application/json; charset=latin-1",
    "\u00e9/\u00e9",
]


def _garbage_body(rng: random.Random, function: str, key: str) -> dict[str, Any]:
    kind = rng.randrange(6)
    if kind == 0:
        return {"body": bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))), "is_base64": True}
    if kind == 1:
        return {"body": "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 80)))}
    if kind == 2:
        return {"body": rng.choice(["%%%", "not base64 at all"]), "is_base64": True}
    if kind == 3:
        ctype, body = multipart(
            {k: str(rng.choice(_VALUES)) for k in rng.sample(_FIELDS["openai_images"], rng.randrange(0, 5))},
            [
                (
                    rng.choice(["image", "image[]", "mask", "x"]),
                    "f",
                    "image/png",
                    rng.choice([png(), b"", BROKEN_PNG]),
                )
                for _ in range(rng.randrange(0, 3))
            ],
            boundary=rng.choice(["zz", "imagemint-test-boundary"]),
        )
        return {"body": body, "is_base64": True, "content_type": ctype}
    fields = _FIELDS[function]
    obj = {k: rng.choice(_VALUES) for k in rng.sample(fields, rng.randrange(0, len(fields)))}
    if kind == 4 and rng.random() < 0.8:
        obj["prompt"] = rng.choice(["a small red boat", "x", " ", "\ud83d"])
    return {"json_body": obj if kind != 5 or rng.random() < 0.5 else rng.choice(_VALUES)}


def _garbage_headers(rng: random.Random, key: str) -> dict[str, str | None]:
    auth_header = rng.choice(
        [
            {},
            {"x-api-key": key},
            bearer(key),
            {"x-api-key": key, **bearer(key)},
            {"authorization": "Bearer"},
            {"authorization": "Bearer  "},
            {"authorization": f"bearer {key}"},
            {"authorization": "Basic Zm9vOmJhcg=="},
            {"x-api-key": ""},
            {"authorization": "\u00e9\u00e9 \u00e9"},
            {"X-Api-Key": key + "x"},
        ]
    )
    extra = {f"x-{rng.randrange(100)}": "".join(chr(rng.randrange(32, 0x2000)) for _ in range(5))}
    return {**auth_header, **extra}


@pytest.mark.parametrize("route", [CONTENT, GENERATIONS, API_GENERATIONS, EDITS, AGENTAI], ids=lambda r: r[1])
def test_nothing_a_client_sends_is_a_500(deps, account, route):
    _, key = account
    function, path = route
    rng = random.Random(f"imagemint-fuzz-{path}")
    failures = []
    for i in range(30):
        headers = _garbage_headers(rng, key)
        body = _garbage_body(rng, function, key)
        if "content_type" in body:
            headers["content-type"] = body.pop("content_type")
        elif rng.random() < 0.3:
            headers["content-type"] = rng.choice(_CONTENT_TYPES)
        reply = invoke(function, http_event("POST", path, headers=headers, **body))
        reply.text.encode("utf-8")  # what Lambda must be able to send
        if reply.status >= 500:
            failures.append((i, headers, body, reply.status, reply.text))
    assert not failures, failures


_ODD_VALUES: list[Any] = [None, True, 0, 1.5, -3, "", "\ud800", [], ["x"], {}, {"k": "v"}]
_BASE = {
    "content_image": {"prompt": "a boat", "resolution": "0.5K"},
    "openai_images": {"prompt": "a boat", "model": "gpt-image-1", "quality": "low"},
    "agentai_image": {"prompt": "a boat", "model": "FLUX.1 [schnell]"},
}


@pytest.mark.parametrize("route", [CONTENT, GENERATIONS, AGENTAI], ids=lambda r: r[1])
def test_any_json_type_in_any_field_is_never_a_500(deps, account, route):
    _, key = account
    function, path = route
    failures = []
    for field in _FIELDS[function]:
        for value in _ODD_VALUES:
            event = http_event("POST", path, headers=bearer(key), json_body={**_BASE[function], field: value})
            reply = invoke(function, event)
            reply.text.encode("utf-8")
            if reply.status >= 500:
                failures.append((field, value, reply.text))
    assert not failures, failures


def test_a_lone_surrogate_in_the_prompt_is_a_400_before_any_job(deps, account):
    _, key = account
    reply = post(AGENTAI, bearer(key), json_body={"prompt": "a boat \ud800"})
    assert_agentai_error(reply, 400)
    reply.text.encode("utf-8")
    assert "surrogate" in reply.json["error"]
    assert jobs(deps) == []


# --------------------------------------------------------------------------- openai: models


def get_models(key: str | None, model: str | None = None) -> Reply:
    path = "/v1/models" if model is None else f"/v1/models/{model}"
    params = None if model is None else {"model": model}
    headers = bearer(key) if key else None
    return invoke("openai_images", http_event("GET", path, headers=headers, path_params=params))


def test_v1_models_lists_what_the_registry_serves_in_openais_shape(deps, account):
    from imagemint.domain import registry

    _, key = account
    reply = get_models(key)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert set(ids) == {n for n in registry.MODELS if not n.endswith("/edit")} | set(registry.AGENTAI_MODELS)
    for m in body["data"]:
        assert {"id", "object", "created", "owned_by"} <= set(m) and m["object"] == "model"
        assert {"status", "shutdown_date", "capabilities", "pricing", "runs_as"} <= set(m)
        assert m["status"] in ("active", "deprecated", "shutdown")
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["gpt-image-1"]["status"] == "shutdown" and by_id["gpt-image-1"]["runs_as"] != "gpt-image-1"
    assert by_id["dall-e-2"]["runs_as"] == deps.settings.default_model
    caps = by_id["gpt-image-2.5-flare"]["capabilities"]
    assert {"xhigh", "max"} <= set(caps["qualities"]) and caps["max_n"] == 10 and caps["edits"] is True
    assert caps["custom_sizes"]["multiple_of"] == 16


def test_v1_models_retrieves_one_model_and_404s_an_unknown_one(deps, account):
    _, key = account
    one = get_models(key, "gpt-image-2")
    assert one.status == 200 and one.json["id"] == "gpt-image-2" and one.json["shutdown_date"] is None
    fal = get_models(key, "fal-ai%2Fnano-banana-2")
    assert fal.status == 200 and fal.json["id"] == "fal-ai/nano-banana-2"
    assert_openai_error(get_models(key, "gpt-image-9"), 404, "model", "model_not_found")


def test_v1_models_needs_a_key(deps, account):
    assert get_models(None).status == 401
    assert get_models("im_sk_not_a_key").status == 401


@pytest.mark.parametrize(
    ("ratio", "resolution", "size"),
    [
        ("16:9", "1K", "1536x864"),
        ("9:16", "1K", "864x1536"),
        ("4:3", "2K", "2048x1536"),
        ("1:1", "4K", "2880x2880"),
    ],
)
def test_content_ratios_on_gpt_image_2_run_at_the_exact_size_of_that_ratio(
    deps, account, ratio, resolution, size
):
    _, key = account
    body = {"prompt": "a poster", "model": "gpt-image-2", "aspect_ratio": ratio, "resolution": resolution}
    reply = post(CONTENT, {"x-api-key": key}, json_body=body)
    assert reply.status == 200, reply.text
    assert only_job(deps).result["size"] == size
