"""A stub of fal's queue API (``queue_url=stub.base_url`` for :class:`FalQueue`).

Submissions are ``POST {queue}/{app}``; the client then follows the
``status_url`` / ``response_url`` / ``cancel_url`` the queue answered with.

Arguments are checked as fal's current schemas check them (:data:`SCHEMAS`,
from fal's model pages and ``@fal-ai/client`` 1.10.1's endpoint types, read
2026-11-28): an unknown enum value, an out-of-range ``num_images``, a missing
required input or an input the model does not have is a 422 naming the input
at the result (``{"detail": [{loc: ["body", name], msg, type}]}``), so a test proves the
adapter only sends what fal takes. Apps not in :data:`SCHEMAS` are not checked.

Routes (names for :meth:`~stubs.StubServer.inject` and :meth:`~stubs.StubServer.on`):

- ``submit``: ``POST /<app>`` (e.g. ``/fal-ai/nano-banana-2/edit``) →
  ``{request_id, status_url, response_url, cancel_url, queue_position}``;
- ``status``: ``GET /<owner>/<alias>/requests/<id>/status`` → ``IN_QUEUE`` /
  ``IN_PROGRESS`` for the first polls (:attr:`FalStub.steps`), then ``COMPLETED``
  (``IN_PROGRESS`` for ever while :attr:`FalStub.hold` is set);
- ``result``: ``GET /<owner>/<alias>/requests/<id>`` →
  ``{images: [{url, content_type, width, height, file_name, file_size}], seed,
  has_nsfw_concepts, prompt, timings}`` (nano-banana: ``{images, description}``),
  with real images of the requested size (scaled down to :attr:`FalStub.max_side`)
  and format; ``sync_mode: true`` gives ``data:`` URIs instead of URLs;
- ``cancel``: ``PUT /<owner>/<alias>/requests/<id>/cancel`` → 202;
- ``file``: ``GET /files/<name>``: the images the results point to.

Requests without ``Authorization: Key ...`` get 401. :attr:`FalStub.nsfw`
(True or a list of flags) and :attr:`FalStub.result_overrides` shape the next
results.

Fault kinds for :meth:`~stubs.StubServer.inject`:

=================  ===================================================================
``rate_limit``     429 with ``Retry-After`` (``retry_after=``, default 7)
``server_error``   500 ``{"detail": "Internal Server Error"}``
``unauthorized``   401 (unknown key)
``forbidden``      403 (key locked / no access)
``validation``     422 ``{"detail": [{loc: ["body", param], msg, type}]}`` (``param=``, ``msg=``)
``content_policy`` 422 of type ``content_policy_violation``
``not_found``      404 (unknown app)
``malformed``      200 with truncated JSON
``delay``          answer normally after ``seconds=`` (cut short when the stub stops)
``http``           any ``status=`` / ``body=`` / ``headers=``
=================  ===================================================================
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import Fault, Recorded, Reply, StubServer, make_image

__all__ = ["SCHEMAS", "FalStub", "QueuedRequest", "schema_errors"]

_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
_RESOLUTIONS = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
_EXT = {"png": "png", "jpeg": "jpg", "webp": "webp"}

_ASPECT_RATIOS = ("auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")
_ASPECT_RATIOS += ("4:1", "1:4", "8:1", "1:8")
_NANO_BANANA_2 = {
    "prompt": str,
    "num_images": (1, 4),
    "seed": int,
    "aspect_ratio": _ASPECT_RATIOS,
    "resolution": tuple(_RESOLUTIONS),
    "output_format": ("jpeg", "png", "webp"),
    "safety_tolerance": ("1", "2", "3", "4", "5", "6"),
    "sync_mode": bool,
    "limit_generations": bool,
    "enable_web_search": bool,
    "thinking_level": ("minimal", "high"),
}
_IMAGE_SIZE = ("square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9")
# Per app: input -> str / int / bool / list (a type), (lo, hi) (an int range) or a tuple of allowed values;
# "required": the inputs that must be there. Inputs not listed are refused (fal's schemas would ignore
# or refuse them; either way the adapter must not send them).
SCHEMAS: dict[str, dict[str, Any]] = {
    "fal-ai/nano-banana-2": {**_NANO_BANANA_2, "required": ("prompt",)},
    "fal-ai/nano-banana-2/edit": {**_NANO_BANANA_2, "image_urls": list, "required": ("prompt", "image_urls")},
    "fal-ai/flux/schnell": {
        "prompt": str,
        "num_images": (1, 4),
        "seed": int,
        "image_size": _IMAGE_SIZE,
        "output_format": ("jpeg", "png"),
        "num_inference_steps": (1, 12),
        "guidance_scale": float,
        "enable_safety_checker": bool,
        "acceleration": ("none", "regular", "high"),
        "sync_mode": bool,
        "required": ("prompt",),
    },
    "fal-ai/ideogram/v3": {
        "prompt": str,
        "num_images": (1, 8),
        "seed": int,
        "image_size": _IMAGE_SIZE,
        "rendering_speed": ("TURBO", "BALANCED", "QUALITY"),
        "style": ("AUTO", "GENERAL", "REALISTIC", "DESIGN"),
        "image_urls": list,
        "negative_prompt": str,
        "expand_prompt": bool,
        "sync_mode": bool,
        "required": ("prompt",),
    },
    "fal-ai/playground-v25": {
        "prompt": str,
        "num_images": (1, 8),
        "seed": int,
        "image_size": _IMAGE_SIZE,
        "format": ("jpeg", "png"),
        "negative_prompt": str,
        "num_inference_steps": (1, 50),
        "guidance_scale": float,
        "enable_safety_checker": bool,
        "sync_mode": bool,
        "required": ("prompt",),
    },
}


def schema_errors(app: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """fal's 422 ``detail`` entries for ``args`` sent to ``app`` (empty: accepted or not checked)."""
    schema = SCHEMAS.get(app)
    if schema is None:
        return []
    errors: list[dict[str, Any]] = []

    def refuse(name: str, msg: str, type_: str) -> None:
        errors.append({"loc": ["body", name], "msg": msg, "type": type_})

    for name in schema["required"]:
        if name not in args:
            refuse(name, "Field required", "missing")
    for name, value in args.items():
        rule = schema.get(name)
        if rule is None or name == "required":
            refuse(name, f"Extra inputs are not permitted ({name})", "extra_forbidden")
        elif name == "image_size" and isinstance(value, dict):
            w, h = value.get("width"), value.get("height")
            if not (isinstance(w, int) and isinstance(h, int) and 0 < w <= 14142 and 0 < h <= 14142):
                refuse(name, "Input should be a valid ImageSize", "model_type")
        elif isinstance(rule, tuple) and len(rule) == 2 and all(isinstance(x, int) for x in rule):
            lo, hi = rule
            if not (isinstance(value, int) and lo <= value <= hi):
                refuse(name, f"Input should be between {lo} and {hi}", "less_than_equal")
        elif isinstance(rule, tuple):
            if value not in rule:
                allowed = ", ".join(repr(x) for x in rule)
                refuse(name, f"Input should be {allowed}", "enum")
        elif rule is float:
            if not isinstance(value, int | float):
                refuse(name, "Input should be a valid number", "float_type")
        elif not isinstance(value, rule):
            refuse(name, f"Input should be a valid {rule.__name__}", f"{rule.__name__}_type")
    return errors


@dataclass
class QueuedRequest:
    request_id: str
    app: str
    arguments: dict[str, Any]
    base: str  # /<owner>/<alias>/requests/<id>
    polls: int = 0
    cancelled: bool = False
    result: dict[str, Any] | None = field(default=None, repr=False)


def _dims(app: str, args: dict[str, Any]) -> tuple[int, int]:
    size = args.get("image_size")
    if isinstance(size, dict):
        return int(size.get("width", 1024)), int(size.get("height", 1024))
    if isinstance(size, str):
        return _PRESETS.get(size, (1024, 1024))
    if "nano-banana" in app:
        long_side = _RESOLUTIONS.get(str(args.get("resolution") or "1K"), 1024)
        ratio = str(args.get("aspect_ratio") or "auto")
        if ratio == "auto":
            return long_side, long_side
        w, h = (int(x) for x in ratio.split(":"))
        return (long_side, round(long_side * h / w)) if w >= h else (round(long_side * w / h), long_side)
    return 1024, 1024


class FalStub(StubServer):
    """fal's queue; see the module docstring."""

    def __init__(self, *, max_side: int = 256) -> None:
        super().__init__()
        self.max_side = max_side
        self.steps: tuple[str, ...] = ("IN_QUEUE", "IN_PROGRESS")
        self.hold = False
        self.nsfw: bool | list[bool] | None = None
        self.result_overrides: dict[str, Any] = {}
        self.queue: dict[str, QueuedRequest] = {}
        self.files: dict[str, tuple[bytes, str]] = {}

    # ------------------------------------------------------------------ routing

    def route_of(self, rec: Recorded) -> str:
        if rec.path.startswith("/files/"):
            return "file"
        if "/requests/" in rec.path:
            if rec.method == "PUT" and rec.path.endswith("/cancel"):
                return "cancel"
            if rec.method == "GET" and rec.path.endswith("/status"):
                return "status"
            if rec.method == "GET":
                return "result"
        if rec.method == "POST":
            return "submit"
        return "other"

    @property
    def submissions(self) -> list[Recorded]:
        return self.on("submit")

    def last_arguments(self) -> dict[str, Any]:
        return dict(self.submissions[-1].json or {})

    def _queued(self, rec: Recorded) -> QueuedRequest | None:
        parts = rec.path.split("/requests/", 1)[1].split("/")
        return self.queue.get(parts[0])

    # ------------------------------------------------------------------ answers

    def handle(self, rec: Recorded) -> Reply:
        if rec.route == "file":
            name = rec.path.removeprefix("/files/")
            if name not in self.files:
                return Reply.json(404, {"detail": "File not found"})
            data, media_type = self.files[name]
            return Reply(200, data, {"Content-Type": media_type})
        if rec.route == "other":
            return Reply.json(404, {"detail": "Not Found"})
        if not rec.headers.get("authorization", "").startswith("Key "):
            return Reply.json(401, {"detail": "Missing authorization header"})
        if rec.route == "submit":
            return self._submit(rec)
        queued = self._queued(rec)
        if queued is None:
            return Reply.json(404, {"detail": "Request not found"})
        if rec.route == "cancel":
            with self._lock:
                queued.cancelled = True
            return Reply.json(202, {"status": "CANCELLATION_REQUESTED"})
        if rec.route == "status":
            return Reply.json(200, self._status(queued))
        return self._result(queued)

    def _submit(self, rec: Recorded) -> Reply:
        app = rec.path.strip("/")
        owner, alias = (app.split("/") + ["", ""])[:2]
        request_id = str(uuid.uuid4())
        base = f"/{owner}/{alias}/requests/{request_id}"
        with self._lock:
            self.queue[request_id] = QueuedRequest(request_id, app, dict(rec.json or {}), base)
        url = self.base_url + base
        body = {
            "status": "IN_QUEUE",
            "request_id": request_id,
            "response_url": url,
            "status_url": url + "/status",
            "cancel_url": url + "/cancel",
            "queue_position": 0,
        }
        return Reply.json(200, body, {"x-fal-request-id": request_id})

    def _status(self, queued: QueuedRequest) -> dict[str, Any]:
        with self._lock:
            queued.polls += 1
            step = queued.polls - 1
        common = {"request_id": queued.request_id, "response_url": self.base_url + queued.base}
        if queued.cancelled:
            return {
                **common,
                "status": "COMPLETED",
                "logs": [],
                "metrics": {},
                "error": "Request was cancelled",
            }
        if self.hold:
            return {**common, "status": "IN_PROGRESS", "logs": []}
        if step < len(self.steps):
            if self.steps[step] == "IN_QUEUE":
                return {**common, "status": "IN_QUEUE", "queue_position": 0}
            return {**common, "status": "IN_PROGRESS", "logs": [{"message": "generating", "level": "INFO"}]}
        return {**common, "status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.01}}

    def _result(self, queued: QueuedRequest) -> Reply:
        if queued.cancelled:
            return Reply.json(400, {"detail": "Request was cancelled"})
        if self.hold or queued.polls <= len(self.steps):
            return Reply.json(400, {"detail": "Request is still in progress"})
        errors = schema_errors(queued.app, queued.arguments)
        if errors:  # fal validates the input when the app runs: the request completes with the error
            return Reply.json(422, {"detail": errors})
        with self._lock:
            if queued.result is None:
                queued.result = self._make_result(queued)
            return Reply.json(200, queued.result, {"x-fal-request-id": queued.request_id})

    def _make_result(self, queued: QueuedRequest) -> dict[str, Any]:
        args = queued.arguments
        n = int(args.get("num_images") or 1)
        width, height = _dims(queued.app, args)
        scale = min(1.0, self.max_side / max(width, height))
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        default_format = "jpeg" if "flux" in queued.app or "playground" in queued.app else "png"
        fmt = str(args.get("output_format") or args.get("format") or default_format)
        images = []
        for i in range(n):
            data, media_type = make_image(width, height, fmt, i)
            name = f"{queued.request_id}-{i}.{_EXT.get(fmt, 'png')}"
            self.files[name] = (data, media_type)
            url = (
                f"data:{media_type};base64,{base64.b64encode(data).decode()}"
                if args.get("sync_mode")
                else f"{self.base_url}/files/{name}"
            )
            images.append(
                {
                    "url": url,
                    "content_type": media_type,
                    "file_name": name,
                    "file_size": len(data),
                    "width": width,
                    "height": height,
                }
            )
        if "nano-banana" in queued.app:
            result: dict[str, Any] = {"images": images, "description": ""}
        else:
            flags = [False] * n
            if self.nsfw is True:
                flags = [True] * n
            elif isinstance(self.nsfw, list):
                flags = list(self.nsfw)
            result = {
                "images": images,
                "seed": args.get("seed", 424242),
                "has_nsfw_concepts": flags,
                "prompt": args.get("prompt", ""),
                "timings": {"inference": 0.01},
            }
        result.update(self.result_overrides)
        return result

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply | None:
        p = fault.params
        kind = fault.kind
        if kind == "rate_limit":
            retry_after = str(p.get("retry_after", 7))
            return Reply.json(429, {"detail": "Too many concurrent requests"}, {"Retry-After": retry_after})
        if kind == "server_error":
            return Reply.json(500, {"detail": "Internal Server Error"}, {"x-fal-request-id": "stub"})
        if kind == "unauthorized":
            return Reply.json(401, {"detail": "No user found for Key ID and Secret"})
        if kind == "forbidden":
            return Reply.json(403, {"detail": "User is locked. Reason: Exhausted balance."})
        if kind == "not_found":
            return Reply.json(404, {"detail": "Application not found"})
        if kind == "validation":
            param = str(p.get("param", "image_size"))
            msg = str(p.get("msg", f"Input should be a valid value for {param}"))
            detail = [{"loc": ["body", param], "msg": msg, "type": "value_error"}]
            return Reply.json(422, {"detail": detail})
        if kind == "content_policy":
            detail = [
                {
                    "loc": ["body", "prompt"],
                    "msg": "The content could not be processed because it was flagged by a content checker.",
                    "type": "content_policy_violation",
                    "url": "https://docs.fal.ai/errors#content_policy_violation",
                }
            ]
            return Reply.json(422, {"detail": detail}, {"X-Fal-Retryable": "false"})
        return super().fault_reply(fault, rec)
