"""Recoup content dialect: ``POST /api/content/image`` and ``GET /api/content/templates[/{id}]``.

Auth: exactly one of ``x-api-key`` or ``Authorization: Bearer``. Errors:
``{"error": "...", "field"?: "..."}``. Returned URLs are durable URLs on our
API (``/api/files/...``), never a provider's expiring CDN URL.
"""

from __future__ import annotations

from typing import Any

from imagemint.api import admission
from imagemint.api.http import (
    HttpRequest,
    accepted_response,
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
from imagemint.domain import auth, registry, service, templates
from imagemint.domain.models import GenerationRequest, ImageInput
from imagemint.errors import ImagemintError, InvalidRequest, JobStillRunning
from imagemint.wiring import Deps

DEFAULT_MODEL = "fal-ai/nano-banana-2"
DEFAULT_PROMPT = "A striking, high-quality promotional image for a music artist"
MAX_PROMPT = 5000
FIELDS = {
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
    "webhook_url",
}


def error_response(exc: ImagemintError) -> Any:
    body: dict[str, Any] = {"error": exc.message}
    if exc.param:
        body["field"] = exc.param
    if "required" in exc.details:
        body.update(required=exc.details["required"], available=exc.details.get("available"))
    body.update(job_fields(exc))
    return response(exc.status, body, retry_headers(exc))


def _uri(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a URI string", param=field)
    value = value.strip()
    if not (value.startswith(("http://", "https://", "data:"))):
        raise InvalidRequest(f"{field} must be an http(s) or data: URI", param=field)
    return value


def parse(body: dict[str, Any], account_id: str) -> GenerationRequest:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        name = echo(unknown[0])
        raise InvalidRequest(f"Unknown field '{name}'", param=name)
    template = None
    if body.get("template") is not None:
        if not isinstance(body["template"], str):
            raise InvalidRequest("template must be a string", param="template")
        if body["template"] not in templates.all_templates():
            raise InvalidRequest(f"Unknown template '{echo(body['template'])}'", param="template")
        template = templates.get_template(body["template"])
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidRequest("prompt must be a string", param="prompt")
    prompt = (prompt or "").strip()
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"prompt must be at most {MAX_PROMPT} characters", param="prompt")
    if not prompt:
        prompt = template["image"]["prompt"] if template else DEFAULT_PROMPT
    if template:
        prompt += templates.style_suffix(template)

    refs: list[ImageInput] = []
    if body.get("reference_image_url") is not None:
        refs.append(
            ImageInput(
                url=_uri(body["reference_image_url"], "reference_image_url"), name="reference_image_url"
            )
        )
    elif template and template["image"].get("reference_images"):
        refs.append(ImageInput(url=template["image"]["reference_images"][0], name="template"))
    images = body.get("images")
    if images is not None:
        if not isinstance(images, list):
            raise InvalidRequest("images must be an array of URIs", param="images")
        if len(images) > 8:
            raise InvalidRequest("images may hold at most 8 URIs", param="images")
        refs.extend(ImageInput(url=_uri(u, "images"), name=f"images[{i}]") for i, u in enumerate(images))

    n = body.get("num_images", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4:
        raise InvalidRequest("num_images must be an integer from 1 to 4", param="num_images")
    aspect = body.get("aspect_ratio", "auto")
    if aspect not in registry.ASPECT_RATIOS_FAL:
        raise InvalidRequest(
            f"aspect_ratio must be one of {', '.join(registry.ASPECT_RATIOS_FAL)}", param="aspect_ratio"
        )
    resolution = body.get("resolution", "1K")
    if not isinstance(resolution, str) or resolution not in registry.RESOLUTIONS:
        raise InvalidRequest(
            f"resolution must be one of {', '.join(registry.RESOLUTIONS)}", param="resolution"
        )
    model = body.get("model", DEFAULT_MODEL)
    if (
        not isinstance(model, str)
        or model not in registry.MODELS
        or registry.MODELS[model].family.startswith("dall-e")
    ):
        raise InvalidRequest(f"Unknown model '{echo(model)}'", param="model")
    flags = extensions(body)
    return GenerationRequest(
        prompt=prompt,
        model=model,
        n=n,
        aspect_ratio=aspect,
        resolution=resolution,
        references=refs,
        dialect="content",
        account_id=account_id,
        **flags,
    )


def handle_image(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        principal = auth.authenticate_key(deps.accounts, deps.settings, req.api_key(exactly_one=True))
        req.check_size(deps.settings.max_body_bytes)

        def work() -> Any:
            request = parse(req.json_object(allow_empty=True), principal.account.account_id)
            wait = prefer_wait(req, deps.settings.sync_deadline_s)
            if wants_async(req) and wait is None:
                return accepted_response(
                    service.submit_async(deps, request, base_url=req.base_url), req.base_url
                )
            try:
                result = service.submit(
                    deps, request, base_url=req.base_url, wait_s=wait, received_at=req.received_at
                )
            except JobStillRunning as exc:
                if wait is None:
                    raise  # 504 with the job id and URL (error_response)
                return still_running_response(exc, req.base_url, wait=wait, respond_async=wants_async(req))
            urls = [service.file_url(req.base_url, img) for img in result.images]
            return response(200, {"imageUrl": urls[0], "images": urls})

        return admission.admit(deps, req, principal, work)

    return run()


def handle_templates(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        template_id = req.path_params.get("id")
        if template_id is None:
            items = [
                {"id": t["id"], "description": t["description"]} for t in templates.all_templates().values()
            ]
            return response(200, {"status": "success", "templates": items})
        return response(200, templates.get_template(template_id))

    return run()
