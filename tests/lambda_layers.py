"""What Lambda gives each function: its layers (template.yaml) and what their requirements install.

Shared by the layer import checks (``tests/unit/test_layers.py``,
``tests/unit/test_function_imports.py``).
"""

from __future__ import annotations

import importlib.metadata as metadata
from functools import cache
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "layers"
LAYER_NAMES = ("core", "providers", "chain", "c2pa")
#: Modules the Lambda python runtime ships (boto3 and its dependencies): importable without a layer.
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})

#: Lambda's python3.12 on arm64, for requirement markers.
LAMBDA_ENV = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": "3.12",
    "sys_platform": "linux",
}


@cache
def function_layers() -> dict[str, list[str]]:
    """Each function's layer folders (``core``, ...), Globals first, as template.yaml attaches them."""
    template = Template.load(ROOT / "template.yaml")
    folders = {name: path.resolve().name for name, path in template.layers().items()}
    assert {path.parent.resolve() for path in template.layers().values()} == {LAYERS}, template.layers()
    return {name: [folders[ref] for ref in fn.layers] for name, fn in template.functions().items()}


def _dist(name: str) -> metadata.Distribution:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is not installed in this environment: the import check cannot follow it")


@cache
def installed_by(layer: str) -> frozenset[str]:
    """Distribution names (canonical) that ``layer``'s requirements.txt installs, transitively."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = []
    for line in (LAYERS / layer / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(LAMBDA_ENV | {"extra": ""}):
                todo.append((req.name, frozenset(req.extras)))
    expanded: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in expanded:
            continue
        expanded.add(key)
        seen.add(key[0])
        for text in _dist(name).requires or []:
            req = Requirement(text)
            if not wanted(req.marker, extras):
                continue
            try:
                metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                # Not installed here; fine only if the marker could not apply to this interpreter.
                if req.marker is None or req.marker.evaluate():
                    pytest.fail(f"{req.name} (needed by {name}) is not installed here")
                seen.add(canonicalize_name(req.name))
                continue
            todo.append((req.name, frozenset(req.extras)))
    return frozenset(seen)


def wanted(marker: Marker | None, extras: frozenset[str]) -> bool:
    if marker is None:
        return True
    # A requirement applies if its marker holds with no extra (a plain dependency) or with one of
    # the extras asked for; `extra == "x"` alone is false without the extra.
    return any(marker.evaluate(LAMBDA_ENV | {"extra": e}) for e in ("", *extras))


@cache
def top_level_of() -> dict[str, set[str]]:
    """Import name -> canonical distribution names (from the installed metadata)."""
    out: dict[str, set[str]] = {}
    for top, dists in metadata.packages_distributions().items():
        out.setdefault(top, set()).update(canonicalize_name(d) for d in dists)
    return out
