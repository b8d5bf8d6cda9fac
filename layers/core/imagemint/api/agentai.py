"""agent.ai dialect: ``POST /action/generate_image``.

Response ``{status: 200, response: "<img src=... alt=... /><br />", metadata: {images: [{prompt, url}]}}``;
the prompt is HTML-escaped where it reaches HTML. Errors ``{"status": <code>, "error": "..."}``.
"""

from __future__ import annotations

import html
from typing import Any

from imagemint.api import admission, ratelimit
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
from imagemint.domain import auth, service
from imagemint.domain.models import GenerationRequest
from imagemint.errors import ImagemintError, InvalidRequest, JobStillRunning, Unauthorized
from imagemint.wiring import Deps

MODELS = ("DALL-E 3", "Playground v3", "FLUX.1 [schnell]", "Ideogram")
STYLES = {
    "default": "",
    "photo": "Photographic style, natural light, realistic detail.",
    "digital art": "Digital art style, crisp rendering, vivid colour.",
    "illustration": "Illustration style, clean shapes and flat colour.",
    "drawing": "Hand-drawn style, pencil and ink lines.",
}
ASPECT_RATIOS = ("9:16", "1:1", "4:3", "16:9")
MAX_PROMPT = 4000


def error_response(exc: ImagemintError) -> Any:
    body: dict[str, Any] = {"status": exc.status, "error": exc.message}
    if exc.param:
        body["param"] = exc.param
    body.update(credit_details(exc))
    body.update(job_fields(exc))
    return response(exc.status, body, retry_headers(exc))


def _enum(data: dict[str, Any], name: str, allowed: Any, default: str) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(
            f"Invalid {name} '{echo(value)}'; expected one of: {', '.join(allowed)}", param=name
        )
    return str(value)


def parse(data: dict[str, Any], account_id: str) -> tuple[GenerationRequest, str]:
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required", param="prompt")
    prompt = prompt.strip()
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"prompt must be at most {MAX_PROMPT} characters", param="prompt")
    model = _enum(data, "model", MODELS, "DALL-E 3")
    style = _enum(data, "model_style", STYLES, "default")
    ratio = _enum(data, "model_aspect_ratio", ASPECT_RATIOS, "9:16")
    full = f"{prompt} {STYLES[style]}".strip()
    request = GenerationRequest(
        prompt=full,
        model=model,
        n=1,
        aspect_ratio=ratio,
        dialect="agentai",
        account_id=account_id,
        **extensions(data),
    )
    return request, prompt


def render(urls: list[str], prompt: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    alt = html.escape(prompt, quote=True)
    tags = "".join(f'<img src="{html.escape(u, quote=True)}" alt="{alt}" /><br />' for u in urls)
    metadata: dict[str, Any] = {"images": [{"prompt": prompt, "url": u} for u in urls]}
    if usage is not None:
        metadata["usage"] = usage
    return {"status": 200, "response": tags, "metadata": metadata}


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        key = req.api_key(x_api_key=False)
        if not key:
            raise Unauthorized("Missing bearer token")
        principal = auth.authenticate_key(deps.accounts, deps.settings, key)
        req.check_size(deps.settings.max_body_bytes)

        def work() -> Any:
            request, prompt = parse(req.json_object(), principal.account.account_id)
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
            usage = {"images": len(result.images), "model": result.model, "cost_usd": result.cost_usd}
            if result.provenance_cost_usd is not None:  # Arweave + mint, a USD estimate (issue 14)
                usage["provenance_cost_usd"] = result.provenance_cost_usd
            return response(200, render(urls, prompt, usage))

        return admission.admit(deps, req, principal, work, header_prefix=ratelimit.AGENTAI_HEADER_PREFIX)

    return run()
