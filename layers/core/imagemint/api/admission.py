"""Admission of a generation request after authentication: rate limits, then Idempotency-Key, then
a concurrency slot, then the work.

Each dialect calls :func:`admit` once with its authenticated principal and a
``work`` function (parse, ``service.submit``, render). The per-minute count
takes every authenticated request (replays too); a concurrency slot is held
only while a generation really runs, so a replay never waits for one. Every
answer, success or error, carries the rate-limit headers in the dialect's names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagemint.api import idempotency, ratelimit
from imagemint.errors import ImagemintError

if TYPE_CHECKING:
    from imagemint.api.http import HttpRequest
    from imagemint.domain.auth import Principal
    from imagemint.wiring import Deps


def admit(
    deps: Deps,
    req: HttpRequest,
    principal: Principal,
    work: Callable[[], Any],
    *,
    header_prefix: str = ratelimit.HEADER_PREFIX,
    idempotent: bool = True,
) -> Any:
    usage = ratelimit.check_rate(deps, principal, header_prefix)
    headers = usage.headers(header_prefix) if usage is not None else {}

    def limited() -> Any:
        with ratelimit.concurrency_slot(deps, principal):
            return work()

    try:
        if idempotent:
            resp = idempotency.run(deps, req, principal.account.account_id, limited)
        else:
            resp = limited()
    except ImagemintError as exc:
        exc.response_headers = {**headers, **exc.response_headers}
        raise
    resp.headers.update(headers)
    return resp
