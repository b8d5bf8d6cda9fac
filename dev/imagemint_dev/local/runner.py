"""Runs a template function's real handler in this process, as Lambda would call it.

Each invocation runs in its own thread, bounded by the function's ``Timeout`` from
``template.yaml`` (:attr:`InProcessFunction.timeout_s`; tests may lower it): a handler still running
when it expires is reported as Lambda reports it, :class:`LambdaTimedOut` (``errorType``
``Sandbox.Timedout``, "Task timed out after N.00 seconds"), which Step Functions sees as that error
and the HTTP front answers with API Gateway's 500. Lambda would freeze and discard the sandbox; a
thread cannot be killed, so the late handler runs on in the background and what it does still
happens (a fidelity limit of running in-process).
"""

from __future__ import annotations

import contextvars
import importlib.util
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from imagemint_dev.local import iam
from imagemint_dev.local.template import FunctionDef


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_s: float
    started: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


class LambdaTimedOut(Exception):
    """The handler ran past the function's timeout (what Lambda reports as ``Sandbox.Timedout``)."""

    error_type = "Sandbox.Timedout"

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds")
        self.timeout_s = timeout_s


class StillRunning(Exception):
    """:meth:`Invocation.result` was given less time than the invocation needs (its caller gives up)."""


class Invocation:
    """One running invocation: :meth:`result` waits for it, at most until the function's timeout."""

    def __init__(self, request_id: str, started: float, timeout_s: float) -> None:
        self.request_id = request_id
        self.started = started
        self.timeout_s = timeout_s
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self._done.set()

    def result(self, wait_s: float | None = None) -> Any:
        """The handler's result (or its exception); :class:`LambdaTimedOut` once the function's timeout
        passed; :class:`StillRunning` when ``wait_s`` (the caller's own limit) ends first."""
        left = self.started + self.timeout_s - time.monotonic()
        if self._done.wait(max(0.0, left if wait_s is None else min(left, wait_s))):
            if self._error is not None:
                raise self._error
            return self._value
        # A caller whose limit is no longer than the function's gives up first: API Gateway's clock
        # starts before Lambda's (which starts after the cold start), so at 30 s and 30 s it is a 503.
        if wait_s is not None and wait_s <= self.timeout_s:
            raise StillRunning(f"still running after {wait_s:.2f} s")
        raise LambdaTimedOut(self.request_id, self.timeout_s)


class InProcessFunction:
    """A template function: its ``CodeUri`` module imported once (cold start), then invoked per event."""

    def __init__(self, fdef: FunctionDef, name: str, arn: str) -> None:
        self.fdef = fdef
        self.name = name
        self.arn = arn
        #: The function's Lambda timeout (``Timeout`` in the template); tests may shorten it.
        self.timeout_s: float = float(fdef.timeout)
        self._handler: Any = None
        self._lock = threading.Lock()

    def handler(self) -> Any:
        with self._lock:
            if self._handler is None:
                module_file, _, attr = self.fdef.handler.rpartition(".")
                path = self.fdef.code_uri / (module_file.replace(".", "/") + ".py")
                mod_name = f"imagemint_fn_{self.fdef.logical_id}"
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"Cannot load handler module {path.name} of {self.fdef.logical_id}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
                self._handler = getattr(module, attr)
            return self._handler

    def start(self, event: Any) -> Invocation:
        """Start an invocation in its own thread; its clock (the function's timeout) starts now."""
        inv = Invocation(str(uuid.uuid4()), time.monotonic(), self.timeout_s)
        ctx = contextvars.copy_context()  # the caller's context (e.g. iam scope) carries over
        t = threading.Thread(
            target=ctx.run, args=(self._run, event, inv), name=f"lambda-{self.fdef.logical_id}", daemon=True
        )
        t.start()
        return inv

    def invoke(self, event: Any) -> Any:
        """Run the handler to its end, or raise :class:`LambdaTimedOut` when the function's timeout passes."""
        return self.start(event).result()

    def _run(self, event: Any, inv: Invocation) -> None:
        # Every AWS call of the cold import and the handler is this function's (imagemint_dev.local.iam).
        try:
            with iam.scope(self.fdef.logical_id):
                handler = self.handler()
                ctx = LambdaContext(
                    function_name=self.name,
                    memory_limit_in_mb=self.fdef.memory,
                    invoked_function_arn=self.arn,
                    aws_request_id=inv.request_id,
                    timeout_s=inv.timeout_s,
                    started=inv.started,
                )
                inv._finish(handler(event, ctx))
        except BaseException as exc:  # the caller re-raises it (Lambda reports it as a function error)
            inv._finish(error=exc)
