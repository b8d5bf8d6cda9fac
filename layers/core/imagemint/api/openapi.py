"""The OpenAPI 3.1 document of every public endpoint, and the docs page (``GET /openapi.json``, ``/docs``).

One document for the four dialects and our own endpoints. Built on the first
request of the docs function only (:func:`document`), never at the cold start
of another function. What the code already knows is read from the code: the
dialects' field sets, enums and limits (``imagemint.api.*``), the model
registry, the content templates, and the job view from the pydantic models it
is made of (:class:`~imagemint.domain.models.Job`,
:class:`~imagemint.domain.models.GenerationResult`,
:class:`~imagemint.domain.models.StoredImage`, :class:`~imagemint.domain.models.Usage`
through ``model_json_schema``, restricted to :data:`imagemint.domain.views.PUBLIC_FIELDS`).
The rest (the wire shapes of the seeds, each dialect's error body, the
extension fields, async mode) is written here, in one place.

Errors: each operation lists the statuses it can answer (:data:`OPERATIONS`),
each in its dialect's shape (:data:`ERROR_SCHEMAS`, what that dialect's one
``error_response`` writes). API Gateway answers some statuses itself, before
or after the function (``{"message": "..."}``: 404 for an unmatched path, 413
over 10 MB, 414 / 431 for a request line / headers over its limits, 429 when throttled, 500 when the
function fails, 503 past the integration timeout, 504): those
statuses accept that shape too. A unit test (``test_openapi``) fails when a
route, method or status drifts from ``template.yaml``, the handlers and the
dialects' error mappings; an integration test (``test_schemathesis``) fuzzes the
document against ``imagemint serve``.
"""

from __future__ import annotations

import copy
import html
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from imagemint.api.http import guarded, plain_error_response
from imagemint.errors import NotFound

OPENAPI_VERSION = "3.1.0"
#: Statuses API Gateway can answer itself on any route (``{"message": ...}``), whatever the function does.
GATEWAY_STATUSES = (414, 429, 431, 500, 503, 504)
#: ... on a route with path parameters (an empty segment matches no route) and on one with a body.
GATEWAY_PATH_STATUSES = (404,)
GATEWAY_BODY_STATUSES = (413,)

# The files of the vendored Swagger UI (functions/docs/static/, copied from a pinned package) that
# /docs/{asset} serves, and their media types.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
}

_STATUS_TEXT = {
    200: "OK",
    202: "Accepted (`Prefer: respond-async`), or still running past `Prefer: wait`: follow the job at "
    "`url` (or `Location`), or wait for its webhook",
    302: "Found: a fresh signed URL of the object in `Location`",
    400: "Bad request: a parameter is missing or wrong (or the provider refused the prompt)",
    401: "No API key, or an unknown, expired or revoked one",
    402: "Not enough credits (`required`, `available`)",
    403: "The key does not belong to this account",
    404: "Not found",
    409: "Conflict: a request with this Idempotency-Key is still running, or the job is not PARTIAL",
    413: "Request body too large (5 MB by default; API Gateway refuses over 10 MB)",
    414: "URI too long (API Gateway's answer: request line and headers are limited to 10 KB)",
    415: "Unsupported media type: this operation takes another Content-Type",
    422: "This Idempotency-Key was used before with another request",
    429: "Rate limited (`Retry-After`); or throttled by API Gateway",
    431: "Request headers too large (API Gateway's answer)",
    500: "Internal error (or the function failed: API Gateway's shape)",
    502: "The provider failed or answered nothing usable",
    503: "A provider cannot be used now (its key cannot be read); nothing is charged",
    504: "The provider timed out, or the job outlived the synchronous deadline (it runs on: `job_id`, `url`)",
}


@dataclass(frozen=True)
class Operation:
    """One route of the template, as documented."""

    method: str  # lower case, as OpenAPI writes it
    path: str  # API Gateway syntax, which is OpenAPI's: /api/jobs/{id}
    operation_id: str
    dialect: str  # whose error shape: legacy | content | openai | agentai | plain
    handler: str  # the function that serves it: "<api module>.<function>" (the test reads the app.py)
    success: tuple[int, ...]
    errors: tuple[int, ...]
    tag: str
    summary: str
    security: tuple[str, ...] = ()  # schemes, any one of which is accepted
    auth_optional: bool = False
    body: str | None = None  # "json" | "json-optional" | "multipart"
    extra: dict[str, Any] = field(default_factory=dict)


# The statuses a generation (POST, JSON) can answer: validation, auth, credits, idempotency, admission,
# the size check, the media type check, the provider.
_GEN_ERRORS = (400, 401, 402, 409, 413, 415, 422, 429, 500, 502, 503, 504)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/api/image/generate",
        "legacyGenerateImage",
        "legacy",
        "legacy.handle",
        (200,),
        (400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503, 504),
        "Recoup legacy",
        "Generate an image, store it on Arweave and mint it as a moment",
        security=("bearerAuth", "apiKeyAuth"),
        auth_optional=True,
    ),
    Operation(
        "post",
        "/api/content/image",
        "contentCreateImage",
        "content",
        "content.handle_image",
        (200, 202),
        _GEN_ERRORS,
        "Recoup content",
        "Generate images from a prompt, a template and reference images",
        security=("apiKeyAuth", "bearerAuth"),
        body="json",
    ),
    Operation(
        "get",
        "/api/content/templates",
        "contentListTemplates",
        "content",
        "content.handle_templates",
        (200,),
        (500,),
        "Recoup content",
        "List the content templates",
    ),
    Operation(
        "get",
        "/api/content/templates/{id}",
        "contentGetTemplate",
        "content",
        "content.handle_templates",
        (200,),
        (404, 500),
        "Recoup content",
        "One content template",
    ),
    Operation(
        "post",
        "/api/images/generations",
        "aigneCreateImage",
        "openai",
        "openai.handle",
        (200, 202),
        _GEN_ERRORS,
        "OpenAI-compatible",
        "Create images (AIGNE Hub: `url` answers by default)",
        security=("bearerAuth",),
        body="json",
    ),
    Operation(
        "post",
        "/v1/images/generations",
        "openaiCreateImage",
        "openai",
        "openai.handle",
        (200, 202),
        _GEN_ERRORS,
        "OpenAI-compatible",
        "Create images (OpenAI: GPT image models answer `b64_json` by default)",
        security=("bearerAuth",),
        body="json",
    ),
    Operation(
        "post",
        "/v1/images/edits",
        "openaiEditImage",
        "openai",
        "openai.handle",
        (200, 202),
        _GEN_ERRORS,
        "OpenAI-compatible",
        "Edit images (multipart, as the OpenAI SDKs send it)",
        security=("bearerAuth",),
        body="multipart",
    ),
    Operation(
        "get",
        "/v1/models",
        "openaiListModels",
        "openai",
        "openai.handle_models",
        (200,),
        (401, 500),
        "OpenAI-compatible",
        "Every model a request may name: capabilities, price, lifecycle",
        security=("bearerAuth",),
    ),
    Operation(
        "get",
        "/v1/models/{model}",
        "openaiGetModel",
        "openai",
        "openai.handle_models",
        (200,),
        (401, 404, 500),
        "OpenAI-compatible",
        "One model (ids with a slash, fal's, URL-encoded: %2F)",
        security=("bearerAuth",),
    ),
    Operation(
        "post",
        "/action/generate_image",
        "agentaiGenerateImage",
        "agentai",
        "agentai.handle",
        (200, 202),
        _GEN_ERRORS,
        "agent.ai",
        "Generate an image (agent.ai's action)",
        security=("bearerAuth",),
        body="json",
    ),
    Operation(
        "get",
        "/api/files/{job_id}/{name}",
        "getFile",
        "plain",
        "files.handle",
        (302,),
        (404, 500),
        "Jobs and files",
        "A durable image URL: redirects to a fresh signed URL",
    ),
    Operation(
        "get",
        "/api/jobs/{id}",
        "getJob",
        "plain",
        "jobs.handle",
        (200,),
        (401, 404, 500),
        "Jobs and files",
        "The owner's view of a job",
        security=("bearerAuth", "apiKeyAuth"),
    ),
    Operation(
        "post",
        "/api/jobs/{id}/resume",
        "resumeJob",
        "plain",
        "jobs.handle_resume",
        (202,),
        (401, 404, 409, 500),
        "Jobs and files",
        "Run a PARTIAL job again from the step that failed",
        security=("bearerAuth", "apiKeyAuth"),
    ),
    Operation(
        "get",
        "/api/verify/{ref}",
        "verifyProvenance",
        "plain",
        "verify.handle",
        (200,),
        (400, 404, 500),
        "Jobs and files",
        "The provenance chain of a job, an Arweave item or a token (`<chainId>:<contract>:<tokenId>`), "
        "checked link by link (public)",
    ),
    Operation(
        "get",
        "/gallery",
        "getGalleryPage",
        "plain",
        "gallery.handle_shell",
        (200,),
        (500,),
        "Gallery",
        "The gallery page (HTML): asks for the key in the page and shows `GET /api/gallery`",
    ),
    Operation(
        "get",
        "/api/gallery",
        "getGallery",
        "plain",
        "gallery.handle_account",
        (200,),
        (401, 500),
        "Gallery",
        "The key's account's recent images, each verified: as data and as escaped HTML",
        security=("bearerAuth", "apiKeyAuth"),
    ),
    Operation(
        "get",
        "/moments/{ref}",
        "getMomentPage",
        "plain",
        "gallery.handle_moment",
        (200,),
        (400, 404, 500),
        "Gallery",
        "One public moment's page (HTML; `ref` as `/api/verify/{ref}` takes it)",
    ),
    Operation(
        "get",
        "/openapi.json",
        "getOpenAPI",
        "plain",
        "openapi.handle_document",
        (200,),
        (500,),
        "Contract",
        "This document",
    ),
    Operation(
        "get",
        "/docs",
        "getDocs",
        "plain",
        "openapi.handle_docs",
        (200,),
        (500,),
        "Contract",
        "This document in Swagger UI (served from this API: no CDN)",
    ),
    Operation(
        "get",
        "/docs/{asset}",
        "getDocsAsset",
        "plain",
        "openapi.handle_asset",
        (200,),
        (404, 500),
        "Contract",
        "The docs page's files",
    ),
)


# --------------------------------------------------------------------------- schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes null (as it is, when it already does)."""
    if {"type": "null"} in schema.get("anyOf", []):
        return schema
    keep = {k: v for k, v in schema.items() if k in ("title", "description")}
    body = {k: v for k, v in schema.items() if k not in ("title", "description", "default")}
    return {**keep, "anyOf": [body, {"type": "null"}]}


_CREDITS = {
    "required": {"type": "integer", "description": "402: credits this request costs"},
    "available": {"type": ["integer", "null"], "description": "402: the account's balance"},
}
# 504 past the synchronous deadline: the job runs on, its result will be at the job's URL.
_STILL_RUNNING = {
    "job_id": {"type": "string", "format": "uuid", "description": "504: the job, still running"},
    "url": {"type": ["string", "null"], "format": "uri", "description": "504: where its result will be"},
}

#: Each dialect's error body, as its ``error_response`` writes it (the seeds' shapes, plus 402's credits).
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "LegacyError": {
        "type": "object",
        "description": 'Recoup legacy: `{"error": "..."}` (seed 000).',
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            **_CREDITS,
            "jobId": _STILL_RUNNING["job_id"],
            "jobUrl": _STILL_RUNNING["url"],
        },
    },
    "ContentError": {
        "type": "object",
        "description": 'Recoup content: `{"error", "field"?}` (seed 002).',
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "field": {"type": "string", "description": "the request field that is wrong"},
            **_CREDITS,
            **_STILL_RUNNING,
        },
    },
    "OpenAIError": {
        "type": "object",
        "description": 'OpenAI\'s error shape: `{"error": {"message", "type", "param", "code"}}`.',
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {
                        "type": "string",
                        "examples": ["invalid_request_error", "rate_limit_exceeded", "server_error"],
                    },
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"], "examples": ["invalid_size", "moderation_blocked"]},
                    **_CREDITS,
                    **_STILL_RUNNING,
                },
            }
        },
    },
    "AgentAIError": {
        "type": "object",
        "description": 'agent.ai: `{"status": <code>, "error": "..."}`.',
        "required": ["status", "error"],
        "properties": {
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "param": {"type": "string"},
            **_CREDITS,
            **_STILL_RUNNING,
        },
    },
    "PlainError": {
        "type": "object",
        "description": 'Our own endpoints (files, jobs, docs): `{"error": "..."}`.',
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "GatewayError": {
        "type": "object",
        "description": "API Gateway's own answer (no route matched, body over 10 MB, throttled, "
        'the function failed or timed out): `{"message": "..."}`.',
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
}
DIALECT_ERROR = {
    "legacy": "LegacyError",
    "content": "ContentError",
    "openai": "OpenAIError",
    "agentai": "AgentAIError",
    "plain": "PlainError",
}


def _extension_properties() -> dict[str, Any]:
    return {
        "archive": {"type": "boolean", "description": "Extension: store each image on Arweave"},
        "mint": {"type": "boolean", "description": "Extension: mint the images as a Zora 1155 moment"},
        "webhook_url": {
            "type": "string",
            "format": "uri",
            "description": "Extension: an https URL the job's outcome is POSTed to (Standard Webhooks, "
            "signed with the account's webhook secret)",
        },
    }


def _request_schemas() -> dict[str, Any]:
    from imagemint.api import agentai, content, openai
    from imagemint.domain import registry, templates

    content_models = [n for n, s in registry.MODELS.items() if not s.family.startswith("dall-e")]
    content_props: dict[str, Any] = {
        "template": {
            "type": "string",
            "enum": sorted(templates.all_templates()),
            "description": "A template id (GET /api/content/templates): its prompt, reference images and "
            "style rules; the caller's fields override it",
        },
        "prompt": {"type": "string", "maxLength": content.MAX_PROMPT},
        "reference_image_url": {"type": "string", "format": "uri"},
        "images": {"type": "array", "maxItems": 8, "items": {"type": "string", "format": "uri"}},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "aspect_ratio": {"type": "string", "enum": list(registry.ASPECT_RATIOS_FAL), "default": "auto"},
        "resolution": {"type": "string", "enum": list(registry.RESOLUTIONS), "default": "1K"},
        "model": {
            "type": "string",
            "enum": content_models,
            "default": content.DEFAULT_MODEL,
            "description": "fal.ai model id (or another registry model); with a reference image the "
            "model's /edit variant runs",
        },
        **_extension_properties(),
    }
    openai_props: dict[str, Any] = {
        "prompt": {"type": "string", "minLength": 1, "maxLength": openai.MAX_PROMPT},
        "model": {
            "type": "string",
            "default": openai.DEFAULT_MODEL,
            "description": "Any id GET /v1/models lists; retired names run on their replacement "
            "(the answer's `warnings` say so)",
            "examples": ["gpt-image-2", "gpt-image-2.5-flare", "dall-e-3", "fal-ai/nano-banana-2"],
        },
        "image": {
            "description": "An image to edit: a URL, base64 or a data: URI, or an array of 1 to 16",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "maxItems": 16, "items": {"type": "string"}},
            ],
        },
        "mask": {"type": "string", "description": "Edits only (POST /v1/images/edits takes it as a file)"},
        "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "size": {
            "type": "string",
            "description": "`WxH` or `auto`; per model (GET /v1/models): GPT image 2 takes any multiple of "
            "16 within its limits; DALL·E sizes are mapped with a warning",
            "examples": ["1024x1024", "1536x864", "auto"],
        },
        "response_format": {"type": "string", "enum": list(openai.ENUMS["response_format"])},
        "quality": {"type": "string", "examples": ["low", "medium", "high", "auto", "xhigh", "hd"]},
        "style": {"type": "string", "description": "DALL·E 3's; mapped onto the prompt with a warning"},
        "background": {"type": "string", "examples": ["transparent", "opaque", "auto"]},
        "output_format": {"type": "string", "enum": list(openai.ENUMS["output_format"]), "default": "png"},
        "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
        "moderation": {"type": "string", "enum": list(openai.ENUMS["moderation"])},
        "user": {"type": "string"},
        "safety_identifier": {"type": "string"},
        "stream": {"type": "boolean", "description": "Not supported: `true` is a 400"},
        "partial_images": {"type": "integer", "description": "Accepted and ignored (no streaming)"},
        "input_fidelity": {"type": "string", "description": "Accepted for edits"},
        **_extension_properties(),
    }
    # Multipart: every field is text (numbers and booleans as their text), the images are files.
    edit_props: dict[str, Any] = {}
    for name, spec in openai_props.items():
        keep = {
            k: v for k, v in spec.items() if k in ("description", "enum", "minimum", "maximum", "default")
        }
        kind = "integer" if spec.get("type") == "integer" else "string"
        edit_props[name] = {"type": kind, **keep}
    edit_props["prompt"] |= {"minLength": 1, "maxLength": openai.MAX_PROMPT}
    for flag in ("archive", "mint", "stream"):
        edit_props[flag] = {"type": "string", "enum": ["true", "false"], "description": "a boolean as text"}
    edit_props["image"] = {
        "description": "1 to 16 image files (`image` or `image[]`)",
        "anyOf": [
            {"type": "string", "contentMediaType": "application/octet-stream"},
            {
                "type": "array",
                "minItems": 1,
                "maxItems": 16,
                "items": {"type": "string", "contentMediaType": "application/octet-stream"},
            },
        ],
    }
    edit_props["mask"] = {"type": "string", "contentMediaType": "application/octet-stream"}
    agentai_props = {
        "prompt": {"type": "string", "minLength": 1, "maxLength": agentai.MAX_PROMPT},
        "model": {"type": "string", "enum": list(agentai.MODELS), "default": agentai.MODELS[0]},
        "model_style": {"type": "string", "enum": list(agentai.STYLES), "default": "default"},
        "model_aspect_ratio": {"type": "string", "enum": list(agentai.ASPECT_RATIOS), "default": "9:16"},
        **_extension_properties(),
    }
    return {
        "ContentCreateImageRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "Every field is optional (seed 002); unknown fields are a 400.",
            "properties": content_props,
        },
        "ImageGenerationRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt"],
            "description": "OpenAI's image parameters (AIGNE Hub's seed 003 and today's GPT image ones); "
            "unknown fields are a 400, as OpenAI answers them.",
            "properties": openai_props,
        },
        "ImageEditRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt", "image"],
            "properties": edit_props,
        },
        "AgentAIGenerateImageRequest": {
            "type": "object",
            "required": ["prompt"],
            "description": "agent.ai's action (seed 004); unknown enum values are a 400.",
            "properties": agentai_props,
        },
    }


def _response_schemas() -> dict[str, Any]:
    return {
        "LegacyImageResponse": {
            "type": "object",
            "description": "The AI SDK's Experimental_GenerateImageResult plus provenance (seeds 000, 001). "
            "`imageUrl`, `arweaveResult` and `moment` are null when that step failed (a warning says so; "
            "the job is PARTIAL and can be resumed).",
            "required": ["images", "warnings", "responses", "providerMetadata", "usage"],
            "properties": {
                "images": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["base64", "uint8Array", "mediaType"],
                        "properties": {
                            "base64": {"type": "string", "description": "empty when over the 6 MB limit"},
                            "uint8Array": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 0, "maximum": 255},
                                "description": "every byte; empty (with a warning) when it would not fit",
                            },
                            "mediaType": {"type": "string"},
                        },
                    },
                },
                "warnings": {"type": "array", "items": {"type": "string"}},
                "responses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "finishReason": {"type": "string"},
                            "timestamp": {"type": "string"},
                            "modelId": {"type": "string"},
                        },
                    },
                },
                "providerMetadata": {
                    "type": "object",
                    "properties": {"model": {"type": "string"}, "size": {"type": "string"}},
                },
                "usage": {
                    "type": "object",
                    "properties": {
                        "promptTokens": {"type": "integer"},
                        "completionTokens": {"type": "integer"},
                        "totalTokens": {"type": "integer"},
                        "images": {"type": "integer"},
                        "costUsd": {"type": "number"},
                    },
                },
                "imageUrl": {"type": ["string", "null"], "description": "the Arweave gateway URL"},
                "jobId": {
                    "type": "string",
                    "format": "uuid",
                    "description": "Extension: the job (GET /api/jobs/{jobId} with the account's key)",
                },
                "arweaveResult": _nullable(_ref("ArweaveTransaction")),
                "moment": _nullable(_ref("InProcessMoment")),
            },
        },
        "ArweaveTransaction": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "last_tx": {"type": "string"},
                "owner": {"type": "string"},
                "tags": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                    },
                },
                "target": {"type": "string"},
                "quantity": {"type": "string"},
                "data": {"type": "string"},
                "reward": {"type": "string"},
                "signature": {"type": "string"},
                "format": {"type": "integer"},
            },
        },
        "InProcessMoment": {
            "type": "object",
            "properties": {
                "contractAddress": {"type": "string"},
                "tokenId": {"type": "string"},
                "hash": {"type": "string"},
                "chainId": {"type": "integer"},
            },
        },
        "ContentCreateImageResponse": {
            "type": "object",
            "required": ["imageUrl", "images"],
            "description": "Durable URLs on this API (GET /api/files/...), never a provider's expiring one.",
            "properties": {
                "imageUrl": {"type": "string", "format": "uri"},
                "images": {"type": "array", "items": {"type": "string", "format": "uri"}},
            },
        },
        "ContentTemplateList": {
            "type": "object",
            "required": ["status", "templates"],
            "properties": {
                "status": {"const": "success"},
                "templates": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "description"],
                        "properties": {"id": {"type": "string"}, "description": {"type": "string"}},
                    },
                },
            },
        },
        "ContentTemplate": {
            "type": "object",
            "required": ["id", "description", "image"],
            "properties": {
                "id": {"type": "string"},
                "description": {"type": "string"},
                "image": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        "prompt": {"type": "string"},
                        "reference_images": {"type": "array", "items": {"type": "string"}},
                        "style_rules": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "ImagesResponse": {
            "type": "object",
            "required": ["created", "data"],
            "description": "OpenAI's images response (seed 003), with `usage` (`images`, `cost_usd` added), "
            "the `size`, `output_format` and `model` that ran, and `warnings`.",
            "properties": {
                "created": {"type": "integer"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string", "format": "uri"},
                            "b64_json": {"type": "string"},
                            "revised_prompt": {"type": "string"},
                        },
                    },
                },
                "usage": {
                    "type": "object",
                    "properties": {
                        "input_tokens": {"type": "integer"},
                        "output_tokens": {"type": "integer"},
                        "total_tokens": {"type": "integer"},
                        "input_tokens_details": {
                            "type": "object",
                            "properties": {
                                "text_tokens": {"type": "integer"},
                                "image_tokens": {"type": "integer"},
                            },
                        },
                        "images": {"type": "integer"},
                        "cost_usd": {"type": "number"},
                    },
                },
                "size": {"type": "string"},
                "output_format": {"type": "string"},
                "model": {"type": "string"},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "description": "OpenAI's model object, plus what a client needs to call it.",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "provider": {"type": "string"},
                "status": {"type": "string"},
                "shutdown_date": {"type": ["string", "null"], "format": "date"},
                "replacement": {"type": ["string", "null"]},
                "runs_as": {"type": "string"},
                "snapshot_of": {"type": ["string", "null"]},
                "alias_of": {"type": "string"},
                "capabilities": {"type": "object"},
                "pricing": {"type": "object"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
        },
        "AgentAIGenerateImageResponse": {
            "type": "object",
            "required": ["status", "response", "metadata"],
            "description": "agent.ai's action response (seed 004): `response` is the HTML of the images "
            "(the prompt escaped), `metadata.images` their URLs.",
            "properties": {
                "status": {"type": "integer", "const": 200},
                "response": {"type": "string"},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "prompt": {"type": "string"},
                                    "url": {"type": "string", "format": "uri"},
                                },
                            },
                        },
                        "usage": {
                            "type": "object",
                            "properties": {
                                "images": {"type": "integer"},
                                "model": {"type": "string"},
                                "cost_usd": {"type": "number"},
                            },
                        },
                    },
                },
            },
        },
        "VerifyLink": {
            "type": "object",
            "required": ["ok", "checks"],
            "description": "One link of the chain: every check, and what was read to make them.",
            "properties": {
                "ok": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
        },
        "VerifyReport": {
            "type": "object",
            "required": ["ref", "ref_kind", "job_id", "ok", "links"],
            "description": "A red link is a verdict (200), not an error; a link whose step did not run "
            "is null.",
            "properties": {
                "ref": {"type": "string"},
                "ref_kind": {"type": "string"},
                "job_id": {"type": "string", "format": "uuid"},
                "model": {"type": "string"},
                "ok": {"type": "boolean"},
                "links": {
                    "type": "object",
                    "additionalProperties": _nullable(_ref("VerifyLink")),
                    "properties": {
                        k: _nullable(_ref("VerifyLink")) for k in ("image", "arweave", "metadata", "token")
                    },
                },
            },
        },
        "GalleryView": {
            "type": "object",
            "required": ["account_id", "moments", "html"],
            "description": "The account's most recent jobs with images (newest first), each verified; "
            "`html` is what the gallery page shows (every value escaped).",
            "properties": {
                "account_id": {"type": "string"},
                "moments": {"type": "array", "items": _ref("GalleryMoment")},
                "html": {"type": "string"},
            },
        },
        "GalleryMoment": {
            "type": "object",
            "required": ["job_id", "prompt", "model", "cost", "images", "verdict"],
            "properties": {
                "job_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string"},
                "created_at": {"type": "number"},
                "created": {"type": "string"},
                "prompt": {"type": "string"},
                "model": {"type": "string"},
                "requested_model": {"type": "string"},
                "provider": {"type": "string"},
                "size": {"type": "string"},
                "cost": {"type": "object"},
                "images": {"type": "array", "items": {"type": "object"}},
                "arweave": {"type": "array", "items": {"type": "object"}},
                "metadata": _or_null({"type": "object"}),
                "token": _or_null({"type": "object"}),
                "public": {"type": "boolean"},
                "page_url": _or_null({"type": "string"}),
                "verify_url": {"type": "string"},
                "verdict": {
                    "type": "object",
                    "required": ["ok", "summary", "links"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "summary": {"type": "string"},
                        "links": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["link", "label", "state", "reason"],
                                "properties": {
                                    "link": {"enum": ["image", "arweave", "metadata", "token"]},
                                    "label": {"type": "string"},
                                    "state": {"enum": ["ok", "broken", "not checked"]},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
        "JobAccepted": {
            "type": "object",
            "required": ["job_id", "status", "url"],
            "description": "`Prefer: respond-async`: the job was created and charged and its execution "
            "started; follow it at `url`.",
            "properties": {
                "job_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "examples": ["ACCEPTED", "RUNNING"]},
                "url": {"type": "string", "format": "uri"},
            },
        },
    }


def _model_schemas() -> dict[str, Any]:
    """The job view (``imagemint.domain.views.public_view``) from the pydantic models it is read from."""
    from imagemint.domain.models import GenerationResult, Job
    from imagemint.domain.views import PUBLIC_FIELDS, RESULT_FIELDS

    ref = "#/components/schemas/{model}"
    job = Job.model_json_schema(ref_template=ref, mode="serialization")
    result = GenerationResult.model_json_schema(ref_template=ref, mode="serialization")
    defs = {**job.pop("$defs", {}), **result.pop("$defs", {})}
    # The view reads each result field with .get: a job still RUNNING has its images and nothing else yet.
    result_props = {k: _or_null(result["properties"][k]) for k in RESULT_FIELDS}
    result_props["image_urls"] = {
        "type": "array",
        "items": {"type": "string", "format": "uri"},
        "description": "durable URLs of the images (GET /api/files/...)",
    }
    props = {k: job["properties"][k] for k in PUBLIC_FIELDS}
    props["url"] = {"type": "string", "format": "uri", "description": "this job's URL"}
    props["provenance_cost"] = {
        "type": ["object", "null"],
        "description": "what its Arweave items and its share of the mint cost: an ESTIMATE at the "
        "configured prices (null when nothing was stored or minted)",
    }
    props["result"] = {
        "type": "object",
        "description": "what the job produced (when it got that far)",
        "properties": result_props,
    }
    view = {
        "type": "object",
        "title": "JobView",
        "description": "What the owner sees of a job (GET /api/jobs/{id}, webhook events' `data`).",
        "required": ["job_id", "status", "url"],
        "properties": props,
    }
    return {**defs, "JobView": view}


# --------------------------------------------------------------------------- operations


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


_HEADERS = {
    "RateLimit": {
        "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests per minute of the key"},
        "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
        "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "epoch seconds"},
    },
    "RetryAfter": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    "Location": {"Location": {"schema": {"type": "string", "format": "uri"}}},
}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    from imagemint.api import idempotency, legacy

    params: list[dict[str, Any]] = []
    names = [seg[1:-1] for seg in op.path.split("/") if seg.startswith("{")]
    for name in names:
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name in ("id", "job_id") and op.path.startswith("/api/"):
            schema = {"type": "string", "format": "uuid"}
        if op.operation_id == "getDocsAsset":
            schema = {"type": "string", "enum": sorted(DOCS_ASSETS)}
        if op.operation_id == "getFile" and name == "name":
            schema = {"type": "string", "pattern": r"^[0-9]{1,3}\.(png|jpeg|webp)$"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    if op.operation_id == "legacyGenerateImage":
        params += [
            {
                "name": "prompt",
                "in": "query",
                "required": True,
                "description": "What to draw (1 to 1000 characters after trimming)",
                "schema": {"type": "string", "minLength": 1, "maxLength": legacy.MAX_PROMPT},
            },
            {
                "name": "account_id",
                "in": "query",
                "required": True,
                "description": "The account generating (and paying for) the image; with a key, the key's",
                "schema": {"type": "string", "format": "uuid"},
            },
        ]
    if 200 in op.success and op.errors == _GEN_ERRORS or op.operation_id == "legacyGenerateImage":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A repeat on the same account gets the first 2xx answer "
                "(`Idempotent-Replayed: true`) and is not charged again; 409 while the first runs, 422 "
                "for the same key with another request",
                "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_CHARS},
            }
        )
    if 202 in op.success and op.body is not None:
        params.append(
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "RFC 7240. `respond-async`: answer 202 with the job's URL once it is "
                "accepted and charged, instead of waiting for the images. `wait=N`: wait at most N "
                "seconds (capped at the synchronous deadline), then 202 with the job's URL if it still "
                "runs. Without either, a job past the deadline is a 504 naming the job.",
                "schema": {"type": "string", "enum": ["respond-async", "wait=10", "respond-async, wait=10"]},
            }
        )
    return params


def _request_body(op: Operation) -> dict[str, Any] | None:
    if op.body is None:
        return None
    if op.body == "multipart":
        return {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": _ref("ImageEditRequest"),
                    "encoding": {
                        "image": {"contentType": "image/png, image/jpeg, image/webp"},
                        "mask": {"contentType": "image/png"},
                    },
                }
            },
        }
    name = {
        "contentCreateImage": "ContentCreateImageRequest",
        "agentaiGenerateImage": "AgentAIGenerateImageRequest",
    }.get(op.operation_id, "ImageGenerationRequest")
    return {"required": True, "content": _json(_ref(name))}


_SUCCESS_SCHEMAS = {
    "legacyGenerateImage": "LegacyImageResponse",
    "contentCreateImage": "ContentCreateImageResponse",
    "contentListTemplates": "ContentTemplateList",
    "contentGetTemplate": "ContentTemplate",
    "aigneCreateImage": "ImagesResponse",
    "openaiCreateImage": "ImagesResponse",
    "openaiEditImage": "ImagesResponse",
    "openaiListModels": "ModelList",
    "openaiGetModel": "Model",
    "agentaiGenerateImage": "AgentAIGenerateImageResponse",
    "getJob": "JobView",
    "resumeJob": "JobView",
    "verifyProvenance": "VerifyReport",
    "getGallery": "GalleryView",
}


def _links(op: Operation) -> dict[str, Any]:
    """From a 202 (or a job) to the job: the links a stateful client (or fuzzer) follows."""
    if op.operation_id in ("getJob", "resumeJob"):
        source = "$response.body#/job_id"
    elif 202 in op.success:
        source = "$response.body#/job_id"
    else:
        return {}
    return {
        "GetJob": {"operationId": "getJob", "parameters": {"id": source}},
        "ResumeJob": {"operationId": "resumeJob", "parameters": {"id": source}},
    }


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    generation = op.errors == _GEN_ERRORS or op.operation_id == "legacyGenerateImage"
    rate = _HEADERS["RateLimit"] if generation else {}
    for status in op.success:
        entry: dict[str, Any] = {"description": _STATUS_TEXT[status]}
        if status == 302:
            entry["headers"] = {
                **_HEADERS["Location"],
                "Cache-Control": {"schema": {"type": "string"}},
            }
        elif status == 202:
            schema = "JobView" if op.operation_id == "resumeJob" else "JobAccepted"
            entry["content"] = _json(_ref(schema))
            entry["headers"] = {**_HEADERS["Location"], **rate}
            if op.operation_id != "resumeJob":
                entry["headers"]["Preference-Applied"] = {"schema": {"type": "string"}}
        elif op.operation_id in ("getDocs", "getGalleryPage", "getMomentPage"):
            entry["content"] = {"text/html": {"schema": {"type": "string"}}}
        elif op.operation_id == "getDocsAsset":
            types = sorted({v.split(";")[0] for v in DOCS_ASSETS.values()})
            entry["content"] = {t: {"schema": {"type": "string"}} for t in types}
        elif op.operation_id == "getOpenAPI":
            entry["content"] = _json({"type": "object", "required": ["openapi", "paths"]})
        else:
            entry["content"] = _json(_ref(_SUCCESS_SCHEMAS[op.operation_id]))
            if rate:
                entry["headers"] = dict(rate)
                entry["headers"]["Idempotent-Replayed"] = {"schema": {"const": "true"}}
        links = _links(op) if status in (200, 202) else {}
        if links and (status == 202 or op.operation_id == "getJob"):
            entry["links"] = links
        out[str(status)] = entry
    gateway = set(GATEWAY_STATUSES)
    if "{" in op.path:
        gateway.update(GATEWAY_PATH_STATUSES)
    if op.method in ("post", "put", "patch"):
        gateway.update(GATEWAY_BODY_STATUSES)
    for status in sorted(set(op.errors) | gateway):
        schema = _ref(DIALECT_ERROR[op.dialect]) if status in op.errors else None
        if status in gateway:
            schema = {"anyOf": [schema, _ref("GatewayError")]} if schema else _ref("GatewayError")
        entry = {"description": _STATUS_TEXT[status], "content": _json(schema)}
        headers = dict(rate)
        if status in (409, 429):
            headers.update(_HEADERS["RetryAfter"])
        if headers:
            entry["headers"] = headers
        out[str(status)] = entry
    return out


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.extra:
        doc.update(op.extra)
    body = _request_body(op)
    if body is not None:
        doc["requestBody"] = body
    security = [{name: []} for name in op.security]
    if op.auth_optional:
        security.append({})
    doc["security"] = security
    if not doc["parameters"]:
        del doc["parameters"]
    return doc


# --------------------------------------------------------------------------- the document


@cache
def _base_document() -> dict[str, Any]:
    from imagemint import __version__

    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    schemas: dict[str, Any] = {
        **ERROR_SCHEMAS,
        **_request_schemas(),
        **_response_schemas(),
        **_model_schemas(),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "imagemint",
            "version": __version__,
            "description": "One image-generation API in four dialects (Recoup legacy and content, "
            "OpenAI-compatible, agent.ai), every request a job, images kept durable; optional Arweave "
            "storage and an onchain moment (Zora 1155). The POST dialects take three extension fields "
            "(`archive`, `mint`, `webhook_url`) and `Prefer: respond-async` (202 with the job's URL).",
            "license": {"name": "MIT"},
        },
        "servers": [{"url": "/"}],
        "security": [],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An imagemint API key (`im_sk_...`): `Authorization: Bearer <key>`",
                },
                "apiKeyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The same key in `x-api-key` (Recoup's header)",
                },
            },
        },
    }


def document(base_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it); ``base_url`` becomes its one server."""
    doc = copy.deepcopy(_base_document())
    if base_url:
        doc["servers"] = [{"url": base_url.rstrip("/")}]
    return doc


@cache
def _document_text() -> str:
    return json.dumps(_base_document(), separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- the docs function

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false
}});
</script>
</body>
</html>
"""


def _text(status: int, body: str, content_type: str, cache_s: int = 300) -> Any:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type=content_type,
        body=body,
        headers={"Cache-Control": f"public, max-age={cache_s}", "X-Content-Type-Options": "nosniff"},
    )


def handle_document(event: dict[str, Any]) -> Any:
    """``GET /openapi.json``: the document; its server is ``/``, this API (the document's own origin)."""

    @guarded(plain_error_response)
    def run() -> Any:
        return _text(200, _document_text(), "application/json")

    return run()


def handle_docs(event: dict[str, Any]) -> Any:
    """``GET /docs``: Swagger UI on the document, every file from this API (works offline)."""

    @guarded(plain_error_response)
    def run() -> Any:
        title = html.escape(str(_base_document()["info"]["title"]))
        return _text(200, _PAGE.format(title=title), "text/html; charset=utf-8")

    return run()


def handle_asset(event: dict[str, Any], read: Any) -> Any:
    """``GET /docs/{asset}``: one of :data:`DOCS_ASSETS`, read by ``read(name)`` (the function's files)."""

    @guarded(plain_error_response)
    def run() -> Any:
        name = str((event.get("pathParameters") or {}).get("asset") or "")
        if name not in DOCS_ASSETS:
            raise NotFound("Not found")
        return _text(200, read(name), DOCS_ASSETS[name], cache_s=86400)

    return run()
