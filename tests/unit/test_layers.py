"""Each layer folder imports only what Lambda gives it: read statically, with ``ast``.

Every module a layer's code imports (at module level, inside functions, under
``TYPE_CHECKING``, or by a constant ``importlib.import_module`` / ``__import__``)
must be one of:

* the standard library (``sys.stdlib_module_names``);
* a part of ``imagemint`` that lives in this layer, or in a layer that every
  function attaching this one also attaches (core -> core; providers -> core +
  providers; chain -> core + chain; read from template.yaml);
* a distribution that those layers' ``requirements.txt`` install, followed
  transitively through the installed metadata (markers evaluated for Lambda:
  CPython 3.12 on Linux aarch64, extras only where a requirement asks for them);
* ``boto3`` / ``botocore``, which the Lambda runtime provides: core only.

The one exception is the composition root: :mod:`imagemint.wiring` builds the
provider, archive and chain adapters, so it names them, inside its builder
functions only (importing wiring never loads them). :data:`BRIDGES` lists each
such import, and the test fails on any other, on a bridge written at module
level, and on a stale entry. That a function never imports a layer it does not
attach is checked by running its handler (``test_function_imports.py``).

Whatever the rules above allow, nothing may import the development package or
its tools (``imagemint_dev``, moto, yaml, eth-tester) or name ``tests/``.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lambda_layers import LAYER_NAMES, LAYERS, function_layers, installed_by, top_level_of, wanted
from packaging.markers import Marker

#: Modules the Lambda runtime provides, and the layers allowed to import them (core: adapters/aws.py).
RUNTIME_PROVIDED = {"core": {"boto3", "botocore"}}
FORBIDDEN = {"imagemint_dev", "moto", "yaml", "eth_tester"}
TESTS_PATH = re.compile(r"(?<![\w.-])tests/")
#: The one import by a computed name a layer may make: ``Later`` imports the names an API function's
#: app.py gives it on its first request; tests/unit/test_function_imports.py loads every one of them
#: with only that function's layers on sys.path, so they are checked there.
DYNAMIC_ALLOWED = {"imagemint/lazy.py"}

#: Imports of another layer's adapters that core may make: the composition root's lazy builders.
BRIDGES: dict[str, set[str]] = {
    "imagemint/wiring.py": {
        "imagemint.adapters.providers.fal_provider",
        "imagemint.adapters.providers.openai_provider",
        "imagemint.adapters.providers.local",
        "imagemint.adapters.arweave.wallet",
        "imagemint.adapters.arweave.gateway_store",
        "imagemint.adapters.chain.zora",
        "imagemint.adapters.c2pa.signer",
        "imagemint.adapters.chain.reader",
        "imagemint.adapters.chain.inprocess",  # chain_mode=inprocess: minter and verify reader
    },
    # The archive step's journal (sign once, commit the saved header on a re-run) runs on the
    # store's own transaction type; only the archive step (which attaches the chain layer) calls it.
    "imagemint/domain/provenance.py": {"imagemint.adapters.arweave.store"},
}


@dataclass(frozen=True)
class Import:
    module: str
    file: str  # relative to the layer folder
    line: int
    lazy: bool  # inside a function body

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def companions(layer: str) -> set[str]:
    """The layers every function attaching ``layer`` also attaches (``layer`` itself included)."""
    sets = [set(layers) for layers in function_layers().values() if layer in layers]
    assert sets, f"no function attaches the {layer} layer"
    return set.intersection(*sets)


def imports_of(layer: str) -> Iterator[Import]:
    base = LAYERS / layer
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        package = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if not path.name == "__init__.py":
            package = package.rpartition(".")[0]
        yield from _walk(tree, rel, package, lazy=False)


def _walk(node: ast.AST, rel: str, package: str, *, lazy: bool) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield Import(alias.name, rel, child.lineno, lazy)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - child.level + 1])
                module = f"{parent}.{child.module}" if child.module else parent
            else:
                module = child.module or ""
            yield Import(module, rel, child.lineno, lazy)
            # `from imagemint.adapters import providers` imports a submodule: name it.
            for alias in child.names:
                if _home(f"{module}.{alias.name}") is not None:
                    yield Import(f"{module}.{alias.name}", rel, child.lineno, lazy)
        elif isinstance(child, ast.Call) and _dynamic_import(child) is not None:
            yield Import(_dynamic_import(child), rel, child.lineno, lazy)  # type: ignore[arg-type]
        yield from _walk(child, rel, package, lazy=inner)


def _dynamic_import(call: ast.Call) -> str | None:
    fn = call.func
    name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
    if name in ("import_module", "__import__") and call.args:
        arg = call.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        return "<dynamic>"
    return None


def _home(module: str) -> str | None:
    """The layer folder whose files hold imagemint ``module`` (a module file or a package), or None."""
    if module.split(".")[0] != "imagemint":
        return None
    rel = Path(*module.split("."))
    for layer in LAYER_NAMES:
        base = LAYERS / layer
        if (base / rel).with_suffix(".py").is_file() or (base / rel / "__init__.py").is_file():
            return layer
    return None


def layer_of(module: str) -> str | None:
    """The layer of imagemint ``module``, or of the module a name comes from (``imagemint.errors.X``)."""
    while module:
        home = _home(module)
        if home is not None:
            return home
        module = module.rpartition(".")[0]
    return None


def problems(layer: str) -> list[str]:
    allowed_layers = companions(layer)
    allowed_dists = frozenset().union(*(installed_by(lyr) for lyr in allowed_layers))
    runtime = RUNTIME_PROVIDED.get(layer, set())
    bridges_seen: set[tuple[str, str]] = set()
    out: list[str] = []
    for imp in imports_of(layer):
        top = imp.module.split(".")[0]
        if imp.module == "<dynamic>" and imp.file in DYNAMIC_ALLOWED and layer == "core":
            continue
        if imp.module == "<dynamic>":
            out.append(f"{imp.file}:{imp.line}: an import by a computed name (cannot be checked)")
        elif top in FORBIDDEN:
            out.append(f"{imp}: development-only, never shipped")
        elif top == "imagemint":
            where = layer_of(imp.module)
            if where is None:
                out.append(f"{imp}: no layer folder has it")
            elif where not in allowed_layers:
                if imp.module in BRIDGES.get(imp.file, set()) and layer == "core":
                    bridges_seen.add((imp.file, imp.module))
                    if not imp.lazy:
                        out.append(f"{imp}: a bridge to the {where} layer must be imported inside a function")
                else:
                    out.append(f"{imp}: lives in the {where} layer, not attached with {layer}")
        elif top in sys.stdlib_module_names or top == "__future__":
            continue
        elif top in runtime:
            continue
        else:
            dists = top_level_of().get(top, set())
            if not dists & allowed_dists:
                owner = ", ".join(sorted(dists)) or "no installed distribution"
                out.append(f"{imp}: {owner} is not installed by {sorted(allowed_layers)} requirements")
    if layer == "core":
        stale = {(f, m) for f, mods in BRIDGES.items() for m in mods} - bridges_seen
        out += [f"BRIDGES lists {m} in {f}, which no longer imports it" for f, m in sorted(stale)]
    return out


def strings_naming_tests(layer: str) -> list[str]:
    out = []
    base = LAYERS / layer
    for path in sorted(base.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if TESTS_PATH.search(node.value):
                    out.append(f"{path.relative_to(base)}:{node.lineno} names tests/")
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
            if TESTS_PATH.search(path.read_text(errors="replace")):
                out.append(f"{path.relative_to(base)} names tests/")
    return out


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("layer", sorted(LAYER_NAMES))
def test_layer_imports_only_what_its_functions_get(layer):
    assert problems(layer) == []


@pytest.mark.parametrize("layer", sorted(LAYER_NAMES))
def test_layer_names_no_test_folder(layer):
    assert strings_naming_tests(layer) == []


def test_every_layer_is_attached_and_core_is_global():
    layers = function_layers()
    assert layers and all(ls and ls[0] == "core" for ls in layers.values()), layers
    assert {lyr for ls in layers.values() for lyr in ls} == set(LAYER_NAMES)
    assert companions("providers") == {"core", "providers"}
    assert companions("chain") == {"core", "chain"}
    assert companions("c2pa") == {"core", "c2pa"}


# --------------------------------------------------------------------------- the checker itself


def test_the_checker_sees_lazy_dynamic_and_forbidden_imports(tmp_path):
    source = (
        "import json\nfrom imagemint.errors import InputRefused\n"
        "def f():\n    import PIL.Image\n    from imagemint.adapters.chain import zora\n"
        "    import importlib\n    importlib.import_module('moto')\n"
    )
    found = list(_walk(ast.parse(source), "x.py", "imagemint", lazy=False))
    lazy = {i.module for i in found if i.lazy}
    assert {"PIL.Image", "imagemint.adapters.chain", "imagemint.adapters.chain.zora", "moto"} <= lazy
    assert {"json", "imagemint.errors"} <= {i.module for i in found if not i.lazy}
    assert layer_of("imagemint.adapters.chain.zora") == "chain"
    assert layer_of("imagemint.errors.InputRefused") == "core"
    assert layer_of("imagemint.adapters.providers") == "providers"


def test_the_resolver_follows_requirements_and_their_extras_only_when_asked():
    chain = installed_by("chain")
    assert {"web3", "eth-account", "eth-utils", "arweave-python-client", "requests"} <= chain
    assert "eth-tester" not in chain  # web3[tester] only
    core = installed_by("core")
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "jmespath"} <= core
    assert not {"boto3", "aws-xray-sdk", "pillow"} & core  # powertools' extras, not asked for
    assert "pillow" in installed_by("providers")
    assert not wanted(Marker('python_version < "3.11"'), frozenset())
    assert not wanted(Marker('extra == "tester"'), frozenset())
    assert wanted(Marker('extra == "tester"'), frozenset({"tester"}))
    assert not wanted(Marker('platform_system == "Windows"'), frozenset())
