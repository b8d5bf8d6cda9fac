"""A stub of OpenAI's Images API for the official SDK (``base_url=stub.base_url + "/v1"``).

Routes:

- ``generations``: ``POST /v1/images/generations`` (JSON body, in ``rec.json``);
- ``edits``: ``POST /v1/images/edits`` (multipart: ``rec.fields`` and ``rec.files``).

Both answer ``{created, data: [{b64_json}], usage, size, quality, output_format, background}``
with ``n`` real images of the requested size and ``output_format`` (PNG by
default). A request without ``Authorization: Bearer`` is a 401.

It behaves like OpenAI's Images API on 2026-11-28 (the pinned SDK's
``types/image_model.py`` / ``image_generate_params.py`` and OpenAI's
deprecations page), from its own table, independent of imagemint's registry:

- a model past its shutdown date (``gpt-image-1`` 2026-10-23, ``dall-e-2`` /
  ``dall-e-3`` 2026-05-12; ``gpt-image-1.5``, ``gpt-image-1-mini``,
  ``chatgpt-image-latest`` from 2026-12-01, compared with ``today``) or an
  unknown one: 404 ``model_not_found``;
- ``response_format`` or ``style``: 400 ``unknown_parameter`` (GPT image models
  always answer base64 and have no style);
- a size outside the model's rules (the three standard sizes and ``auto``; for
  gpt-image-2 / 2.5 any ``WxH`` with both sides divisible by 16, ratio 1:3 to
  3:1, at most 3840x2160 and at least 655,360 pixels): 400 ``invalid_size``;
- a quality outside ``low|medium|high|auto`` (plus ``xhigh|max`` on 2.5): 400
  ``invalid_value``; ``n`` outside 1..10: 400.

Every request is kept (``requests``; :meth:`OpenAIStub.sent` lists the parameters
of each), so tests can assert what was never sent.

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
from datetime import UTC, date, datetime
from typing import Any

from . import Fault, Recorded, Reply, StubServer, make_image

__all__ = ["LIVE", "SHUT_DOWN", "OpenAIStub"]

_GPT2_FAMILY = ("gpt-image-2", "gpt-image-2-2026-04-21")
_GPT25 = (
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
)
_DEC_1 = date(2026, 12, 1)
# model -> shutdown date (None: none announced)
LIVE: dict[str, date | None] = {
    **dict.fromkeys(_GPT2_FAMILY + _GPT25 + ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare")),
    **dict.fromkeys(
        ("gpt-image-1.5", "gpt-image-1.5-2025-12-16", "gpt-image-1-mini", "chatgpt-image-latest"), _DEC_1
    ),
}
SHUT_DOWN: dict[str, date] = {
    "gpt-image-1": date(2026, 10, 23),
    "dall-e-2": date(2026, 5, 12),
    "dall-e-3": date(2026, 5, 12),
}
_STANDARD_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
_QUALITIES = ("low", "medium", "high", "auto")


def _size_problem(model: str, size: str) -> str | None:
    if size in _STANDARD_SIZES:
        return None
    w, sep, h = size.partition("x")
    if model not in _GPT2_FAMILY + _GPT25 or not sep or not w.isdigit() or not h.isdigit():
        return (
            f"Invalid value: '{size}'. Supported values are: 'auto', '1024x1024', '1536x1024', '1024x1536'."
        )
    width, height = int(w), int(h)
    if width % 16 or height % 16:
        return f"Invalid size '{size}': width and height must be divisible by 16."
    if max(width, height) > 3 * min(width, height):
        return f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
    if max(width, height) > 3840 or width * height > 3840 * 2160:
        return f"Invalid size '{size}': the maximum supported resolution is 3840x2160."
    if width * height < 655_360:
        return f"Invalid size '{size}': the image must have at least 655360 pixels."
    return None


def _error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None, **headers: str
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Reply.json(status, body, {"x-request-id": "req_stub", **headers})


class OpenAIStub(StubServer):
    """OpenAI's ``/v1/images/generations`` and ``/v1/images/edits``; see the module docstring."""

    def __init__(self, *, max_side: int = 2048, today: date | None = None) -> None:
        super().__init__()
        self.max_side = max_side
        self.today = today  # None: the real date, at each request

    def status_of(self, model: str) -> str:
        """``live``, ``shutdown`` (past its date as of ``today``) or ``unknown``."""
        on = self.today or datetime.now(UTC).date()
        if model in SHUT_DOWN or (model in LIVE and LIVE[model] is not None and on >= LIVE[model]):  # type: ignore[operator]
            return "shutdown"
        return "live" if model in LIVE else "unknown"

    def sent(self) -> list[dict[str, Any]]:
        """The parameters of every images request received, in order (the stub's log)."""
        with self._lock:
            recs = [r for r in self.requests if r.route in ("generations", "edits")]
        return [self.params(r) for r in recs]

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
        status = self.status_of(model)
        if status != "live":
            why = "was shut down" if status == "shutdown" else "does not exist"
            return _error(
                404,
                f"The model `{model}` {why} or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        for refused in ("response_format", "style"):
            if refused in params:
                return _error(
                    400,
                    f"Unknown parameter: '{refused}'.",
                    "invalid_request_error",
                    "unknown_parameter",
                    refused,
                )
        size_problem = _size_problem(model, str(params.get("size") or "auto"))
        if size_problem:
            return _error(400, size_problem, "invalid_request_error", "invalid_size", "size")
        qualities = _QUALITIES + (("xhigh", "max") if model in _GPT25 else ())
        if params.get("quality") is not None and params["quality"] not in qualities:
            return _error(
                400,
                f"Invalid value: '{params['quality']}'. Supported values are: {', '.join(qualities)}.",
                "invalid_request_error",
                "invalid_value",
                "quality",
            )
        gpt_image = True
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
        if not 1 <= n <= 10:
            return _error(400, "n must be between 1 and 10.", "invalid_request_error", "invalid_value", "n")
        size = str(params.get("size") or "auto")
        width, height = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
        scale = min(1.0, self.max_side / max(width, height))
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        fmt = str(params.get("output_format") or "png")
        data = []
        for i in range(n):
            raw, _ = make_image(width, height, fmt, i)
            data.append({"b64_json": base64.b64encode(raw).decode()})
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
        model = str(self.params(rec).get("model") or "gpt-image-2") if rec.route != "other" else "gpt-image-2"
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
