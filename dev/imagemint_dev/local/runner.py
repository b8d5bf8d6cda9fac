"""Runs a template function's real handler in this process, as Lambda would call it."""

from __future__ import annotations

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
    timeout_s: int
    started: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


class InProcessFunction:
    """A template function: its ``CodeUri`` module imported once (cold start), then invoked per event."""

    def __init__(self, fdef: FunctionDef, name: str, arn: str) -> None:
        self.fdef = fdef
        self.name = name
        self.arn = arn
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

    def invoke(self, event: Any) -> Any:
        # Every AWS call of the cold import and the handler is this function's (imagemint_dev.local.iam).
        with iam.scope(self.fdef.logical_id):
            handler = self.handler()
            ctx = LambdaContext(
                function_name=self.name,
                memory_limit_in_mb=self.fdef.memory,
                invoked_function_arn=self.arn,
                aws_request_id=str(uuid.uuid4()),
                timeout_s=self.fdef.timeout,
                started=time.monotonic(),
            )
            return handler(event, ctx)
