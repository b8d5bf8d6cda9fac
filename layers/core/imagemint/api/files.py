"""``GET /api/files/{job_id}/{name}``: durable URLs for images in our bucket.

The URL never expires; each request answers 302 with a fresh short-lived
signed URL to the object, so the function never carries image bytes.
"""

from __future__ import annotations

import re
from typing import Any

from imagemint.api.http import SECURITY_HEADERS, HttpRequest, guarded, plain_error_response
from imagemint.domain.models import JOB_ID
from imagemint.errors import NotFound
from imagemint.wiring import Deps

_NAME = re.compile(r"^[0-9]{1,3}\.(png|jpeg|webp)$")


def handle(event: dict[str, Any], deps: Deps) -> Any:
    from aws_lambda_powertools.event_handler import Response

    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        job_id = req.path_params.get("job_id", "")
        name = req.path_params.get("name", "")
        if not JOB_ID.match(job_id) or not _NAME.match(name):
            raise NotFound("File not found")
        key = f"images/{job_id}/{name}"
        if deps.images.head(key) is None:
            raise NotFound("File not found")
        url = deps.images.url(key, 3600)
        return Response(
            status_code=302,
            headers={"Location": url, "Cache-Control": "private, max-age=300", **SECURITY_HEADERS},
            body="",
        )

    return run()
