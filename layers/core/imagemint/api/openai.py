"""OpenAI-compatible dialect (AIGNE Hub): ``POST /api/images/generations``, ``/v1/images/generations``,
``/v1/images/edits`` (multipart, as the OpenAI SDK sends it), ``GET /v1/models[/{model}]``.

Answers: on ``/v1/...`` a GPT image model answers ``b64_json`` when no
``response_format`` is given, as OpenAI does (the AI SDK and the OpenAI SDKs
read ``data[].b64_json``); ``response_format: "url"`` is our extension. On
``/api/images/generations`` the seed's default ``url`` stands.

Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
from typing import Any

from imagemint.api import admission
from imagemint.api.http import (
    HttpRequest,
    accepted_response,
    credit_details,
    echo,
    extensions,
    guarded,
    job_fields,
    prefer_wait,
    response,
    retry_headers,
    still_running_response,
    wants_async,
)
from imagemint.api.multipart import parse_multipart
from imagemint.domain import auth, service
from imagemint.domain.models import GenerationRequest, ImageInput
from imagemint.domain.ports import InputImage
from imagemint.errors import (
    ImagemintError,
    InputRefused,
    InvalidRequest,
    JobStillRunning,
    ModerationBlocked,
    Unauthorized,
    UnsupportedMediaType,
)
from imagemint.wiring import Deps

MAX_IMAGES = 16  # input images per request
DEFAULT_MODEL = "dall-e-2"  # the seed's default; retired, so it runs on the configured default model
MAX_PROMPT = 32000
STR_FIELDS = ("size", "quality", "style", "background", "moderation", "user", "safety_identifier")
END_USER = ("user", "safety_identifier")  # passed through to OpenAI
ENUMS = {
    "response_format": ("url", "b64_json"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("low", "auto"),
}
KNOWN = {
    "prompt",
    "model",
    "image",
    "mask",
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
    "safety_identifier",
    "archive",
    "mint",
    "webhook_url",
    "stream",
    "partial_images",
    "input_fidelity",
}

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_CODES = {
    "invalid_request": None,
    "input_refused": "invalid_image_url",
    "unauthorized": "invalid_api_key",
    "insufficient_credits": "insufficient_quota",
    "rate_limited": "rate_limit_exceeded",
    "payload_too_large": "payload_too_large",
    "unsupported_media_type": "unsupported_media_type",
    "not_found": "not_found",
    "forbidden": "forbidden",
    "provider_timeout": "timeout",
    "provider_error": "provider_error",
    "internal_error": "server_error",
    "conflict": "conflict",
    "idempotency_key_reused": "idempotency_key_reused",
}


def error_response(exc: ImagemintError) -> Any:
    if isinstance(exc, ModerationBlocked):
        etype, code = "image_generation_user_error", "moderation_blocked"
    else:
        etype = _TYPES.get(exc.status, "server_error" if exc.status >= 500 else "invalid_request_error")
        code = exc.details.get("openai_code") or _CODES.get(exc.code)
        if exc.param == "size" and exc.status == 400:
            code = "invalid_size"
        if code == "model_not_found":  # as OpenAI types it
            etype = "invalid_request_error"
    body = {"error": {"message": exc.message, "type": etype, "param": exc.param, "code": code}}
    body["error"].update(credit_details(exc))
    body["error"].update(job_fields(exc))
    return response(exc.status, body, retry_headers(exc))


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - KNOWN)
    if unknown:
        name = echo(unknown[0])
        raise InvalidRequest(f"Unrecognized request argument supplied: {name}", param=name)
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"prompt must be at most {MAX_PROMPT} characters", param="prompt")
    model = data.get("model") or DEFAULT_MODEL
    if not isinstance(model, str):
        raise InvalidRequest("model must be a string", param="model")
    n = data.get("n", 1)
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise InvalidRequest("n must be an integer between 1 and 10", param="n")
    for f in STR_FIELDS:
        if data.get(f) is not None and not isinstance(data[f], str):
            raise InvalidRequest(f"{f} must be a string", param=f)
    for f, allowed in ENUMS.items():
        if data.get(f) is not None and data[f] not in allowed:
            raise InvalidRequest(
                f"Invalid {f} '{echo(data[f])}'; expected one of {', '.join(allowed)}", param=f
            )
    comp = data.get("output_compression")
    if isinstance(comp, str) and comp.strip().isdigit():
        comp = int(comp)
    if comp is not None and (isinstance(comp, bool) or not isinstance(comp, int) or not 0 <= comp <= 100):
        raise InvalidRequest(
            "output_compression must be an integer from 0 to 100", param="output_compression"
        )
    if data.get("stream") in (True, "true"):
        raise InvalidRequest("stream is not supported; use response_format url or b64_json", param="stream")
    flags = extensions(data, form=True)
    end_user = {f: data[f] for f in END_USER if isinstance(data.get(f), str) and data[f]}
    if end_user:
        flags["extra"] = {**flags.get("extra", {}), **end_user}
    return {
        "prompt": prompt.strip(),
        "model": model,
        "n": n,
        "size": data.get("size"),
        "quality": data.get("quality"),
        "style": data.get("style"),
        "background": data.get("background"),
        "moderation": data.get("moderation"),
        "output_format": data.get("output_format") or "png",
        "output_compression": comp,
        **flags,
    }


def _image_inputs(value: Any, max_bytes: int) -> tuple[list[ImageInput], list[InputImage]]:
    """``image`` as a URL, base64 / data URI, or an array of them."""
    from imagemint.adapters.net.fetch import decode_base64_image

    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_IMAGES:  # before any is decoded or fetched
        raise InvalidRequest(f"image must hold 1 to {MAX_IMAGES} images", param="image")
    urls: list[ImageInput] = []
    uploads: list[InputImage] = []
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise InvalidRequest("image must be a URL or base64 string", param="image")
    pixels = 0
    for i, item in enumerate(items):
        name = "image" if len(items) == 1 else f"image[{i}]"
        if item.startswith(("http://", "https://")):
            urls.append(ImageInput(url=item, name=name))
        else:
            uploads.append(decode_base64_image(item, name=name, max_bytes=max_bytes))
            pixels = _within_request_pixels(uploads[-1], pixels)
    return urls, uploads


def parse_json(
    req: HttpRequest, account_id: str, max_bytes: int
) -> tuple[GenerationRequest, dict[str, Any], list[InputImage]]:
    data = req.json_object()
    fields = _fields(data)
    response_format = data.get("response_format") or default_response_format(req.path, fields["model"])
    refs: list[ImageInput] = []
    uploads: list[InputImage] = []
    if data.get("image") is not None:
        refs, uploads = _image_inputs(data["image"], max_bytes)
    request = GenerationRequest(**fields, references=refs, dialect="openai", account_id=account_id)
    return request, {"response_format": response_format}, uploads


def parse_edit(
    req: HttpRequest, account_id: str, max_bytes: int
) -> tuple[GenerationRequest, dict[str, Any], list[InputImage], InputImage | None]:
    if req.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Edits take multipart/form-data (image files, mask, prompt)", param="Content-Type"
        )
    parts = parse_multipart(req.headers["content-type"], req.body)
    # Counted and checked as text first: no image is decoded for a request refused anyway.
    images = [p for p in parts if p.name in ("image", "image[]") and p.is_file]
    masks = [p for p in parts if p.name == "mask"]
    taken = {id(p) for p in (*images, *masks)}
    if len(images) > MAX_IMAGES:
        raise InvalidRequest(f"At most {MAX_IMAGES} images", param="image")
    if len(masks) > 1:
        raise InvalidRequest("At most one mask", param="mask")
    data: dict[str, Any] = {}
    for p in parts:
        if id(p) in taken:
            continue
        if p.name in ("image", "image[]"):  # image given as text: a URL or base64
            raise InvalidRequest("image must be uploaded as a file", param="image")
        try:
            data[p.name] = p.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{echo(p.name)} must be text", param=echo(p.name)) from None
    if not images:
        raise InvalidRequest("image is required", param="image")
    fields = _fields(data)
    uploads = [_file(p.data, f"image[{i}]", max_bytes) for i, p in enumerate(images)]
    mask = _file(masks[0].data, "mask", max_bytes) if masks else None
    request = GenerationRequest(**fields, dialect="openai", account_id=account_id)
    response_format = data.get("response_format") or default_response_format(req.path, fields["model"])
    return request, {"response_format": response_format}, uploads, mask


def default_response_format(path: str, model: str) -> str:
    """``b64_json`` for GPT image models on ``/v1/...`` (OpenAI's answer), else ``url`` (the seed's)."""
    from imagemint.domain.registry import MODELS

    spec = MODELS.get(model)
    if path.startswith("/v1/") and spec is not None and spec.family == "gpt-image":
        return "b64_json"
    return "url"


def _file(data: bytes, name: str, max_bytes: int) -> InputImage:
    from imagemint.adapters.net.fetch import check_image

    if len(data) > max_bytes:
        raise InputRefused(f"{name} is larger than {max_bytes} bytes", param=name)
    return check_image(data, name=name)


def _within_request_pixels(image: InputImage, total: int) -> int:
    """The request's pixels so far plus ``image``'s (read from its header); 400 over the request's budget."""
    from imagemint.adapters.net.sniff import MAX_REQUEST_PIXELS, image_info

    info = image_info(image.data)
    total += info.pixels * info.frames if info else 0
    if total > MAX_REQUEST_PIXELS:
        raise InputRefused(
            f"The input images hold more than {MAX_REQUEST_PIXELS:,} pixels together", param=image.name
        )
    return total


def render(deps: Deps, result: Any, opts: dict[str, Any], limit: int) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    total = 0
    for img in result.images:
        item: dict[str, Any] = {}
        if opts["response_format"] == "b64_json":
            b64 = base64.b64encode(service.image_bytes(deps, img)).decode("ascii")
            total += len(b64)
            item["b64_json"] = b64
        else:
            item["url"] = service.signed_url(deps, img)
        if img.revised_prompt:
            item["revised_prompt"] = img.revised_prompt
        data.append(item)
    if total > limit:
        raise InvalidRequest(
            "The images exceed the 6 MB response limit as b64_json; "
            "ask for response_format=url or fewer images",
            param="response_format",
        )
    return {
        "created": result.created,
        "data": data,
        "usage": {
            "input_tokens": result.usage.prompt_tokens,
            "output_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens,
            "input_tokens_details": {"text_tokens": result.usage.prompt_tokens, "image_tokens": 0},
            "images": len(result.images),
            "cost_usd": result.cost_usd,
            # Arweave + mint, a USD estimate (issue 14): only when the job stored or minted something.
            **(
                {}
                if result.provenance_cost_usd is None
                else {"provenance_cost_usd": result.provenance_cost_usd}
            ),
        },
        "size": result.size,
        "output_format": result.images[0].media_type.split("/")[1],
        "model": result.model,
        "warnings": result.warnings,
    }


def _authenticate(req: HttpRequest, deps: Deps) -> Any:
    """The caller's principal, from OpenAI's ``Authorization: Bearer`` key (401 without one)."""
    key = req.api_key(x_api_key=False)
    if not key:
        raise Unauthorized("You didn't provide an API key. Use 'Authorization: Bearer <key>'.")
    return auth.authenticate_key(deps.accounts, deps.settings, key)


def handle(event: dict[str, Any], deps: Deps, *, edit: bool = False) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        principal = _authenticate(req, deps)
        account = principal.account
        req.check_size(deps.settings.max_body_bytes)

        def work() -> Any:
            limit = deps.settings.max_input_image_bytes
            mask = None
            if edit:
                request, opts, uploads, mask = parse_edit(req, account.account_id, limit)
            else:
                request, opts, uploads = parse_json(req, account.account_id, limit)
            wait = prefer_wait(req, deps.settings.sync_deadline_s)
            if wants_async(req) and wait is None:
                job = service.submit_async(deps, request, uploads, mask, base_url=req.base_url)
                return accepted_response(job, req.base_url)
            try:
                result = service.submit(
                    deps,
                    request,
                    uploads,
                    mask,
                    base_url=req.base_url,
                    wait_s=wait,
                    received_at=req.received_at,
                )
            except JobStillRunning as exc:
                if wait is None:
                    raise  # 504 with the job id and URL (error_response)
                return still_running_response(exc, req.base_url, wait=wait, respond_async=wants_async(req))
            try:
                body = render(deps, result, opts, deps.settings.response_limit_bytes)
            except InvalidRequest:
                # Too large to deliver as b64_json: nothing was delivered, so nothing is charged.
                from imagemint.domain import credits

                credits.refund_failed(deps, result.job_id)
                raise
            return response(200, body)

        return admission.admit(deps, req, principal, work)

    return run()


def handle_models(event: dict[str, Any], deps: Deps, model_id: str | None = None) -> Any:
    """``GET /v1/models`` (OpenAI's list shape) and ``GET /v1/models/{model}``, with our capabilities.

    Each entry adds to OpenAI's ``{id, object, created, owned_by}`` what a client needs to call
    it: ``capabilities`` (sizes or aspect ratios, qualities, formats, max n, edits), ``pricing``,
    ``status``, ``shutdown_date``, ``replacement`` and ``runs_as`` (the live model a request
    naming it runs on today). Ids with a slash (fal's) are given URL-encoded (``%2F``).
    """

    @guarded(error_response)
    def run() -> Any:
        from urllib.parse import unquote

        from imagemint.domain import registry
        from imagemint.errors import NotFound

        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        _authenticate(req, deps)
        entries = registry.catalogue(default_model=deps.settings.default_model)
        if model_id is None:
            return response(200, {"object": "list", "data": entries})
        wanted = unquote(model_id)
        for entry in entries:
            if entry["id"] == wanted:
                return response(200, entry)
        raise NotFound(f"The model '{wanted}' does not exist", param="model", openai_code="model_not_found")

    return run()
