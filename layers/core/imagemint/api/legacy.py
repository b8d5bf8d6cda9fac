"""Recoup legacy dialect: ``GET /api/image/generate?prompt=&account_id=``.

Response: the AI SDK ``Experimental_GenerateImageResult`` shape plus
``imageUrl``, ``arweaveResult`` and ``moment``. Errors: ``{"error": "..."}``.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from imagemint.api import admission
from imagemint.api.http import HttpRequest, guarded, response, retry_headers
from imagemint.domain import auth, service
from imagemint.domain.models import GenerationRequest, GenerationResult
from imagemint.errors import ImagemintError, InvalidRequest, Unauthorized
from imagemint.wiring import Deps

MAX_PROMPT = 1000  # the model: the deployment's default (IMAGEMINT_DEFAULT_MODEL), a live one


def error_response(exc: ImagemintError) -> Any:
    body: dict[str, Any] = {"error": exc.message}
    if "required" in exc.details:
        body.update(required=exc.details["required"], available=exc.details.get("available"))
    if "job_id" in exc.details:  # past the deadline: the job runs on; its result will be at jobUrl
        body.update(jobId=exc.details["job_id"], jobUrl=exc.details.get("url"))
    return response(exc.status, body, retry_headers(exc))


def parse(req: HttpRequest) -> tuple[str, str]:
    prompt = (req.query.get("prompt") or "").strip()
    if not prompt:
        raise InvalidRequest("Prompt is required", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest("Prompt is too long", param="prompt")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("Prompt is not valid text (a lone UTF-16 surrogate)", param="prompt") from None
    account_id = (req.query.get("account_id") or "").strip()
    if not account_id:
        raise InvalidRequest("account_id is required", param="account_id")
    try:
        uuid.UUID(account_id)
    except ValueError:
        raise InvalidRequest("account_id must be a UUID", param="account_id") from None
    return prompt, account_id


def render(deps: Deps, result: GenerationResult, limit: int) -> dict[str, Any]:
    warnings = list(result.warnings)
    datas = [service.image_bytes(deps, img) for img in result.images]
    b64s = [base64.b64encode(d).decode("ascii") for d in datas]
    base_size = 4096 + sum(len(b) for b in b64s)
    array_size = sum(len(d) * 4 for d in datas)  # "255," is at most 4 characters per byte
    with_arrays = base_size + array_size <= limit
    with_b64 = base_size <= limit
    if not with_arrays:
        warnings.append(
            "uint8Array omitted: the image as a JSON array would exceed the 6 MB response limit; "
            "use base64" + ("" if with_b64 else " or imageUrl")
        )
    if not with_b64:
        warnings.append("base64 omitted: the image exceeds the 6 MB response limit; fetch it from imageUrl")
    ts = datetime.fromtimestamp(result.created, UTC).isoformat().replace("+00:00", "Z")
    images = [
        {
            "base64": b if with_b64 else "",
            "uint8Array": list(d) if with_arrays else [],
            "mediaType": img.media_type,
        }
        for img, d, b in zip(result.images, datas, b64s, strict=True)
    ]
    archive = (result.archive or [None])[0]
    return {
        "images": images,
        "warnings": warnings,
        "responses": [{"finishReason": "stop", "timestamp": ts, "modelId": result.model}],
        "providerMetadata": {"model": result.model, "size": result.size},
        "usage": {
            "promptTokens": result.usage.prompt_tokens,
            "completionTokens": result.usage.completion_tokens,
            "totalTokens": result.usage.total_tokens,
            "images": len(result.images),
            "costUsd": result.cost_usd,
            # Arweave + mint, a USD estimate (issue 14): only when the job stored or minted something.
            **(
                {}
                if result.provenance_cost_usd is None
                else {"provenanceCostUsd": result.provenance_cost_usd}
            ),
        },
        "imageUrl": archive.get("url") if archive else None,
        "arweaveResult": archive.get("record") if archive else None,
        "moment": result.moment,
        "jobId": result.job_id,  # extension: GET /api/jobs/{jobId} (with the account's key) shows the job
    }


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        prompt, account_id = parse(req)
        key = req.api_key()
        if key:
            principal = auth.authenticate_key(deps.accounts, deps.settings, key)
            auth.require_owner(principal.account, account_id)
        elif deps.settings.legacy_require_key:
            raise Unauthorized("An API key is required (x-api-key or Authorization: Bearer)")
        else:  # keyless (the seed's contract): limited per account
            principal = auth.Principal(auth.get_account_or_404(deps.accounts, account_id))

        def work() -> Any:
            request = GenerationRequest(
                prompt=prompt,
                model=deps.settings.default_model,
                n=1,
                size="1024x1024",
                dialect="legacy",
                account_id=account_id,
                archive=True,
                mint=True,
            )
            result = service.submit(deps, request, base_url=req.base_url, received_at=req.received_at)
            return response(200, render(deps, result, deps.settings.response_limit_bytes))

        return admission.admit(deps, req, principal, work)

    return run()
