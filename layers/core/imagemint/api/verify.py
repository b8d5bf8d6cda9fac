"""``GET /api/verify/{ref}``: the provenance verdict of a job, an Arweave item or a token, link by link.

Public: no key. The answer is :func:`imagemint.domain.verify.verify`'s JSON, always
200 when the ref leads to a job (a red link is a verdict, not an error); 404 when
it leads nowhere, 400 for a ref of no known shape.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from imagemint.api.http import HttpRequest, guarded, plain_error_response, response
from imagemint.domain import verify
from imagemint.wiring import Deps


def handle(event: dict[str, Any], deps: Deps) -> Any:
    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        ref = urllib.parse.unquote(req.path_params.get("ref", ""))
        return response(200, verify.verify(deps, ref), {"Cache-Control": "no-store"})

    return run()
