"""Start the whole local runtime: moto resources, in-process functions, the HTTP front, the dev account."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagemint_dev.local.server import LocalApi, make_server, serve_in_thread
from imagemint_dev.local.stack import LocalStack, find_root


@dataclass
class LocalRuntime:
    stack: LocalStack
    server: Any
    base_url: str
    account: dict[str, str]
    started_in_s: float

    def inject_crash(self, function: str, *, after: bool, times: int = 1, skip: int = 0) -> None:
        """See :meth:`LocalStack.inject_crash`."""
        self.stack.inject_crash(function, after=after, times=times, skip=skip)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.stack.stop()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    *,
    root: Path | None = None,
    state_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 3000,
    credits: int = 100_000,  # $100 at 1 credit = $0.001 (imagemint.domain.credits)
    extra_env: dict[str, str] | None = None,
) -> LocalRuntime:
    t0 = time.perf_counter()
    root = root or find_root()
    state_dir = state_dir or (root / ".imagemint")
    api = LocalApi([], {})
    server = make_server(api, host, port)  # bind first: the port decides the public URL
    actual_port = server.server_address[1]
    base_url = f"http://{host}:{actual_port}"
    stack = LocalStack(root=root, state_dir=state_dir, public_base_url=base_url, extra_env=extra_env or {})
    try:
        stack.start()
        api.routes = stack.routes
        api.functions = stack.functions
        api.local_routes = [stack.gateway]
        account = stack.dev_account(credits=credits)
    except BaseException:
        server.server_close()
        stack.stop()
        raise
    serve_in_thread(server)
    return LocalRuntime(stack, server, base_url, account, time.perf_counter() - t0)
