"""Start the whole local runtime: moto resources, in-process functions, the HTTP front, the dev account."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from imagemint_dev.local.output import Output
from imagemint_dev.local.server import LocalApi, make_server, serve_in_thread
from imagemint_dev.local.stack import LocalStack, find_root

DEBUG_LOG = "debug.log"


@dataclass
class LocalRuntime:
    stack: LocalStack
    server: Any
    base_url: str
    account: dict[str, str]
    started_in_s: float
    output: Output | None = None

    @property
    def debug_log(self) -> Path | None:
        """Where everything but the console lines goes (``start(console=...)`` only)."""
        return self.output.debug_log if self.output else None

    def inject_crash(self, function: str, *, after: bool, times: int = 1, skip: int = 0) -> None:
        """See :meth:`LocalStack.inject_crash`."""
        self.stack.inject_crash(function, after=after, times=times, skip=skip)

    def stop(self) -> None:
        try:
            self.server.shutdown()
            self.server.server_close()
            self.stack.stop()
        finally:
            if self.output is not None:
                self.output.uninstall()

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
    console: TextIO | None = None,
) -> LocalRuntime:
    """Start the runtime; :meth:`LocalRuntime.stop` undoes everything.

    ``console`` (what ``imagemint serve`` passes): print one line per request and
    our own warnings there, and send every other log line (functions' JSON logs,
    moto, its Step Functions interpreter, werkzeug, Python warnings) to
    ``<state_dir>/debug.log`` (:mod:`imagemint_dev.local.output`). Without it the
    process's logging is left as it is (tests).
    """
    t0 = time.perf_counter()
    root = root or find_root()
    state_dir = state_dir or (root / ".imagemint")
    output = Output(state_dir / DEBUG_LOG, console).install() if console is not None else None
    server: Any = None
    stack: LocalStack | None = None
    try:
        api = LocalApi([], {})
        server = make_server(api, host, port, request_log=output.request if output else None)
        base_url = f"http://{host}:{server.server_address[1]}"  # bind first: the port decides the public URL
        stack = LocalStack(
            root=root, state_dir=state_dir, public_base_url=base_url, extra_env=extra_env or {}
        )
        stack.start()
        if output is not None:
            output.verbose_peers()
        api.routes = stack.routes
        api.functions = stack.functions
        api.local_routes = [stack.gateway]
        account = stack.dev_account(credits=credits)
    except BaseException:
        try:
            if server is not None:
                server.server_close()
            if stack is not None:
                stack.stop()
        finally:
            if output is not None:
                output.uninstall()
        raise
    serve_in_thread(server)
    return LocalRuntime(stack, server, base_url, account, time.perf_counter() - t0, output)
