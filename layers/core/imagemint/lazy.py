"""Modules an API function imports on its first request, not at init.

An API function's ``import app`` is its Lambda init. Init is kept to what
Powertools' resolver and the logger cost (issue 9's budget: 1.3x
``import aws_lambda_powertools.event_handler, pydantic``); the dialect, the
domain models, the settings and the wiring load when a request first needs
them, as the boto3 clients already did. The repository's cold-import bench
prints both parts (``import app`` and the first request's imports), and its
function-import test checks that an API function's init builds no pydantic
model and that every module named with ``Later`` loads from the function's own
layers.

    legacy = Later("imagemint.api.legacy")
    legacy.handle(event, deps)   # imports imagemint.api.legacy the first time

This module imports nothing of ours, and nothing but the standard library.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class Later:
    """A module, imported the first time one of its attributes is read; then a plain lookup."""

    __slots__ = ("name", "_module")

    def __init__(self, name: str) -> None:
        self.name = name
        self._module: ModuleType | None = None

    def load(self) -> ModuleType:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self.name)
        return module

    def __getattr__(self, attr: str):
        return getattr(self.load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded"
        return f"Later({self.name!r}, {state})"
