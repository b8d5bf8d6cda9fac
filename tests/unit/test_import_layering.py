"""Import layering of the deployed package: the contracts of pyproject.toml, no cycles, lazy exceptions.

The contracts (``[tool.importlinter]``) run in ``make lint`` and here; this file adds
what import-linter does not say: no import cycle anywhere in ``imagemint`` (across
packages too, lazy imports counted), and every import a contract lets through as an
exception is made inside a function, never at import time.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import grimp

from imagemint_dev.importlint import see_every_layer

ROOT = Path(__file__).resolve().parents[2]


@cache
def graph() -> grimp.ImportGraph:
    see_every_layer()
    return grimp.build_graph("imagemint", cache_dir=None)


def excepted_imports() -> set[tuple[str, str]]:
    """Every ``ignore_imports`` entry of the contracts: the documented exceptions."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    out = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        for entry in contract.get("ignore_imports", []):
            importer, _, imported = entry.partition(" -> ")
            out.add((importer.strip(), imported.strip()))
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_check_sees_all_three_layer_folders() -> None:
    modules = graph().modules
    for module in (
        "imagemint.wiring",  # core
        "imagemint.adapters.providers.local",  # providers
        "imagemint.adapters.chain.zora",  # chain
        "imagemint.adapters.arweave.store",  # chain
    ):
        assert module in modules


def test_cycles_finds_a_cycle_through_a_lazy_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_deployed_package() -> None:
    g = graph()
    excepted = excepted_imports()
    edges = {
        m: {i for i in g.find_modules_directly_imported_by(m) if (m, i) not in excepted} for m in g.modules
    }
    assert cycles(edges) == []


def _deferred_lines(path: Path) -> set[int]:
    """The lines of ``path`` that do not run at import: function bodies and ``if TYPE_CHECKING:``."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.update(range(node.body[0].lineno, (node.end_lineno or node.lineno) + 1))
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            lines.update(range(node.body[0].lineno, (node.body[-1].end_lineno or node.lineno) + 1))
    return lines


def test_every_excepted_import_is_lazy() -> None:
    g = graph()
    excepted = excepted_imports()
    assert excepted, "the contracts name their exceptions in ignore_imports"
    for importer, imported in sorted(excepted):
        details = g.get_import_details(importer=importer, imported=imported)
        assert details, f"{importer} no longer imports {imported}: drop the exception"
        spec = importlib.util.find_spec(importer)
        assert spec is not None and spec.origin
        deferred = _deferred_lines(Path(spec.origin))
        for d in details:
            assert d["line_number"] in deferred, (
                f"{importer}:{d['line_number']} imports {imported} at import time"
            )


def test_the_layering_contracts_hold() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "imagemint_dev.importlint", "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
