"""A stub of OpenAI's Images API for the official SDK (``base_url=stub.base_url + "/v1"``).

Routes:

- ``generations``: ``POST /v1/images/generations`` (JSON body, in ``rec.json``);
- ``edits``: ``POST /v1/images/edits`` (multipart: ``rec.fields`` and ``rec.files``).

Both answer ``{created, data: [{b64_json}], usage, size, quality, output_format, background}``
with ``n`` real images of the requested size and ``output_format`` (PNG by
default). GPT image models get ``usage``; ``response_format`` sent to a GPT
image model is refused with 400 as OpenAI does, and DALL·E models answer
``revised_prompt`` (dall-e-3). A request without ``Authorization: Bearer`` is a 401.

Fault kinds for :meth:`~stubs.StubServer.inject`:

=====================  =======================================================================
``rate_limit``         429 ``rate_limit_exceeded`` with ``Retry-After`` (``retry_after=``, default 7)
``insufficient_quota`` 429 ``insufficient_quota`` (billing)
``server_error``       500 ``server_error``
``unauthorized``       401 ``invalid_api_key``
``org_verification``   403: the organisation must be verified to use the model
``moderation``         400 ``moderation_blocked`` (GPT image models' safety system)
``content_policy``     400 ``content_policy_violation`` (the DALL·E form)
``bad_request``        400 ``invalid_request_error`` (``param=``, ``message=``, ``code=``)
``empty``              200 with ``data: []``
``url_only``           200 with ``data: [{url}]`` and no base64
``not_image``          200 with base64 of bytes that are not an image
``malformed``          200 with truncated JSON
``delay``              answer normally after ``seconds=`` (cut short when the stub stops)
``http``               any ``status=`` / ``body=`` / ``headers=``
=====================  =======================================================================
"""

from __future__ import annotations

import base64
import time
from typing import Any

from . import Fault, Recorded, Reply, StubServer, make_image

__all__ = ["OpenAIStub"]


def _error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None, **headers: str
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Reply.json(status, body, {"x-request-id": "req_stub", **headers})


class OpenAIStub(StubServer):
    """OpenAI's ``/v1/images/generations`` and ``/v1/images/edits``; see the module docstring."""

    def __init__(self, *, max_side: int = 2048) -> None:
        super().__init__()
        self.max_side = max_side

    def route_of(self, rec: Recorded) -> str:
        if rec.method == "POST" and rec.path == "/v1/images/generations":
            return "generations"
        if rec.method == "POST" and rec.path == "/v1/images/edits":
            return "edits"
        return "other"

    # ------------------------------------------------------------------ convenience for assertions

    @property
    def last(self) -> Recorded:
        with self._lock:
            return self.requests[-1]

    def params(self, rec: Recorded | None = None) -> dict[str, Any]:
        """The parameters of a request as one flat dict (JSON body or multipart text fields)."""
        rec = rec or self.last
        if rec.json is not None:
            return dict(rec.json)
        return {k: v[0] if len(v) == 1 else v for k, v in rec.fields.items()}

    # ------------------------------------------------------------------ answers

    def handle(self, rec: Recorded) -> Reply:
        if rec.route == "other":
            return _error(404, f"Invalid URL ({rec.method} {rec.path})", "invalid_request_error", None)
        if not rec.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "You didn't provide an API key.", "invalid_request_error", None)
        params = self.params(rec)
        model = str(params.get("model") or "dall-e-2")
        gpt_image = not model.startswith("dall-e")
        if "response_format" in params and gpt_image:
            return _error(
                400,
                "Unknown parameter: 'response_format'.",
                "invalid_request_error",
                "unknown_parameter",
                "response_format",
            )
        if rec.route == "edits" and not rec.files:
            return _error(
                400,
                "Missing required parameter: 'image'.",
                "invalid_request_error",
                "missing_required_parameter",
                "image",
            )
        try:
            n = int(params.get("n") or 1)
        except (TypeError, ValueError):
            return _error(400, "Invalid type for 'n'.", "invalid_request_error", "invalid_type", "n")
        size = str(params.get("size") or "auto")
        width, height = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
        scale = min(1.0, self.max_side / max(width, height))
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        fmt = str(params.get("output_format") or "png") if gpt_image else "png"
        data = []
        for i in range(n):
            raw, _ = make_image(width, height, fmt, i)
            item: dict[str, Any] = {"b64_json": base64.b64encode(raw).decode()}
            if model == "dall-e-3":
                item["revised_prompt"] = f"A revised version of: {params.get('prompt', '')}"
            data.append(item)
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if gpt_image:
            prompt_tokens = max(1, len(str(params.get("prompt", ""))) // 4)
            image_tokens = 65 * len(rec.files)
            body.update(
                {
                    "background": params.get("background")
                    if params.get("background") != "auto"
                    else "opaque",
                    "output_format": fmt,
                    "quality": params.get("quality")
                    if params.get("quality") not in (None, "auto")
                    else "medium",
                    "size": f"{width}x{height}",
                    "usage": {
                        "input_tokens": prompt_tokens + image_tokens,
                        "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": image_tokens},
                        "output_tokens": 1056 * n,
                        "total_tokens": prompt_tokens + image_tokens + 1056 * n,
                    },
                }
            )
        return Reply.json(200, body, {"x-request-id": "req_stub", "openai-processing-ms": "5"})

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply | None:
        p = fault.params
        model = str(self.params(rec).get("model") or "gpt-image-1") if rec.route != "other" else "gpt-image-1"
        kind = fault.kind
        if kind == "rate_limit":
            retry_after = str(p.get("retry_after", 7))
            return _error(
                429,
                f"Rate limit reached for {model} in organization org-stub on images per minute (IPM): "
                f"Limit 5, Used 5, Requested 1. Please try again in {retry_after}s.",
                "requests",
                "rate_limit_exceeded",
                **{"retry-after": retry_after, "x-ratelimit-remaining-requests": "0"},
            )
        if kind == "insufficient_quota":
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if kind == "server_error":
            return _error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        if kind == "unauthorized":
            return _error(
                401,
                "Incorrect API key provided: sk-stub***********key. You can find your API key "
                "in your account settings.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if kind == "org_verification":
            return _error(
                403,
                f"Your organization must be verified to use the model `{model}`. Verify the organization in "
                "the platform settings (General > Verify Organization); access can take up to 15 minutes "
                "to propagate after verifying.",
                "invalid_request_error",
                None,
            )
        if kind == "moderation":
            return _error(
                400,
                "Your request was rejected by the safety system. If you believe this is an "
                "error, contact us and include the request ID req_stub.",
                "image_generation_user_error",
                "moderation_blocked",
            )
        if kind == "content_policy":
            return _error(
                400,
                "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.",
                "invalid_request_error",
                "content_policy_violation",
            )
        if kind == "bad_request":
            return _error(
                400,
                str(
                    p.get(
                        "message",
                        "Invalid value: '999x999'. Supported values are: "
                        "'1024x1024', '1024x1536', '1536x1024', and 'auto'.",
                    )
                ),
                "invalid_request_error",
                p.get("code", "invalid_value"),
                p.get("param", "size"),
            )
        if kind == "empty":
            return Reply.json(200, {"created": int(time.time()), "data": []})
        if kind == "url_only":
            return Reply.json(200, {"created": int(time.time()), "data": [{"url": f"{self.base_url}/x.png"}]})
        if kind == "not_image":
            junk = base64.b64encode(b"definitely not an image").decode()
            return Reply.json(200, {"created": int(time.time()), "data": [{"b64_json": junk}]})
        return super().fault_reply(fault, rec)
