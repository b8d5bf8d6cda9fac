"""Each function, imported as Lambda imports it: its own folder, its layers, nothing else of ours.

For every function of template.yaml a fresh interpreter gets on ``sys.path``
the function's ``CodeUri`` folder, the folders of the layers it attaches
(Globals first, then its own, as SAM orders them) and the interpreter's own
stdlib and site-packages; the editable install's entries (every ``layers/*``
folder and ``dev/``) are dropped. It imports the handler module (Lambda's init),
then the modules its first request imports (:class:`imagemint.lazy.Later`), reports
what each part loaded, and in that same process round-trips every domain error
through ``to_dict`` / JSON / ``from_dict``: a job record written by one
function is read by another that may have imported nothing but
:mod:`imagemint.errors`.

The test fails when a function loads a module of a layer it does not attach,
anything of ``imagemint_dev``, or a library that neither its layers'
requirements nor the Lambda runtime provide; and when an error comes back as
another class, or with another code, status, message, param or details.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest
from lambda_layers import LAYERS, ROOT, RUNTIME_PACKAGES, installed_by, top_level_of

from imagemint_dev.local.template import FunctionDef, Template

DEV = ROOT / "dev"

# Runs in the fresh interpreter. argv[1]: JSON list of the folders to put first on sys.path;
# argv[2]: the handler module. Prints one JSON report on stdout.
PROBE = r"""
import json, socket, sys

prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
sys.path[:] = json.loads(sys.argv[1]) + [p for p in sys.path if p.startswith(prefixes)]
preloaded = sorted(m for m in sys.modules if m.split(".")[0] in ("imagemint", "imagemint_dev"))


def _no_network(self, address, *args):
    raise OSError(f"import-time network use: {address!r}")


socket.socket.connect = socket.socket.connect_ex = _no_network

import importlib
import inspect

before = set(sys.modules)
handler = importlib.import_module(sys.argv[2])
at_init = sorted(set(sys.modules) - before)  # Lambda's init: the handler module's import alone
# The modules its first request imports (imagemint.lazy.Later), loaded as a request would.
later = sorted(v.name for v in vars(handler).values() if type(v).__name__ == "Later")
for v in vars(handler).values():
    if type(v).__name__ == "Later":
        v.load()
loaded = {  # what the handler brought in (the interpreter's start-up modules are not its doing)
    name: getattr(module, "__file__", None) or list(getattr(module, "__path__", []) or [])
    for name, module in list(sys.modules.items())
    if name not in before
}

from imagemint import errors

base = errors.ImagemintError
classes = sorted(
    {obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, base)} - {base}
    | set(errors.BY_CODE.values()),
    key=lambda c: c.__name__,
)


def build(cls):
    params = inspect.signature(cls.__init__).parameters
    if "param" in params:
        return cls(f"a {cls.__name__} happened", param="prompt", reason="because", retry_after=7, n=[1, 2])
    # A class with its own constructor (PipelineFailed): a string for each of its arguments.
    args = [f"{n}-value" for n, p in params.items() if n != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]
    return cls(*args)


trips = []
for cls in classes:
    exc = build(cls)
    stored = json.loads(json.dumps(exc.to_dict()))  # as a job record keeps it
    back = errors.from_dict(stored)
    trips.append(
        {
            "class": cls.__name__,
            "in_by_code": cls in errors.BY_CODE.values(),
            "code": cls.code,
            "by_code": errors.BY_CODE.get(cls.code, type(None)).__name__,
            "ancestors": [c.__name__ for c in cls.__mro__],
            "sent": [type(exc).__name__, exc.code, exc.status, exc.message, exc.param, exc.details],
            "back": [type(back).__name__, back.code, back.status, back.message, back.param, back.details],
            "stored_again": back.to_dict() == stored,
        }
    )

report = {"path": sys.path, "preloaded": preloaded, "at_init": at_init, "later": later, "loaded": loaded}
print(json.dumps({**report, "errors": trips}))
"""


@cache
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


def sys_path_for(fn: FunctionDef) -> list[str]:
    layer_dirs = template().layers()
    return [str(fn.code_uri), *(str(layer_dirs[name]) for name in fn.layers)]


def environment(fn: FunctionDef) -> dict[str, str]:
    """The function's template variables that are plain strings, and a region; no credentials of ours."""
    env = {k: v for k, v in fn.environment.items() if isinstance(v, str)}
    env.update(
        PATH=os.environ.get("PATH", ""),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_LAMBDA_FUNCTION_NAME=fn.logical_id,
    )
    return env


def probe(fn: FunctionDef) -> dict:
    module = fn.handler.rsplit(".", 1)[0]
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-c", PROBE, json.dumps(sys_path_for(fn)), module],
        capture_output=True,
        text=True,
        env=environment(fn),
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    assert done.returncode == 0, f"{fn.logical_id}: importing {module} failed\n{done.stderr}"
    return json.loads(done.stdout)


@cache
def reports() -> dict[str, dict]:
    """One fresh interpreter per function, a few at a time."""
    functions = template().functions()
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(zip(functions, pool.map(probe, functions.values()), strict=True))


def attached_folders(fn: FunctionDef) -> set[Path]:
    return {template().layers()[name].resolve() for name in fn.layers}


def _under(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder)


def strays(fn: FunctionDef, report: dict) -> list[str]:
    """What ``fn`` loaded that Lambda would not give it."""
    ours = [d.resolve() for d in LAYERS.iterdir() if d.is_dir()] + [DEV.resolve()]
    allowed_ours = attached_folders(fn) | {fn.code_uri.resolve()}
    dists = frozenset().union(*(installed_by(d.name) for d in attached_folders(fn)))
    site = {
        Path(p).resolve()
        for p in report["path"]
        if "site-packages" in Path(p).parts or "dist-packages" in Path(p).parts
    }
    out = []
    for name, where in sorted(report["loaded"].items()):
        files = where if isinstance(where, list) else [where] if where else []
        if name.split(".")[0] == "imagemint_dev":
            out.append(f"{name}: the development package")
        for file in files:
            if any(_under(file, d) for d in ours) and not any(_under(file, d) for d in allowed_ours):
                out.append(f"{name}: from {Path(file).resolve().relative_to(ROOT)}, not attached")
            elif any(_under(file, s) for s in site) and "." not in name:
                owners = top_level_of().get(name, set())
                if name not in RUNTIME_PACKAGES and owners and not owners & dists:
                    out.append(f"{name}: from {', '.join(sorted(owners))}, which no attached layer installs")
    return out


FUNCTIONS = sorted(template().functions())


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_imports_only_its_code_and_its_layers(name):
    fn = template().functions()[name]
    report = reports()[name]
    assert report["preloaded"] == []  # nothing of ours before the handler's import
    # Our folders on sys.path: exactly the function's and its layers'.
    ours = {LAYERS.resolve(), DEV.resolve()}
    on_path = {Path(p).resolve() for p in report["path"] if any(_under(p, d) for d in ours)}
    assert on_path == attached_folders(fn)
    assert strays(fn, report) == []
    assert "imagemint.errors" in report["loaded"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_error_survives_a_job_record_in_each_function(name):
    trips = reports()[name]["errors"]
    assert {t["class"] for t in trips if t["in_by_code"]} >= {"ArchiveError", "MintError", "WebhookFailed"}
    for t in trips:
        sent, back = t["sent"], t["back"]
        # The class from_dict rebuilds for this code: the class itself, or (for a subclass that
        # shares its parent's code, as WalletError does) that parent.
        assert t["by_code"] in t["ancestors"], t
        expected_class = t["class"] if t["in_by_code"] else t["by_code"]
        assert back[0] == expected_class, t
        assert back[1:] == sent[1:], t  # code, status, message, param, details
        assert t["stored_again"], t


def test_the_probe_sees_a_stray_import():
    """The check itself: a handler that imports the chain layer from an API function is caught."""
    fn = template().functions()["LegacyImageFunction"]
    report = dict(reports()["LegacyImageFunction"])
    zora = LAYERS / "chain" / "imagemint" / "adapters" / "chain" / "zora.py"
    report["loaded"] = {
        **report["loaded"],
        "imagemint.adapters.chain.zora": str(zora),
        "imagemint_dev": str(DEV / "imagemint_dev" / "__init__.py"),
        "web3": importlib.util.find_spec("web3").origin,  # the chain layer's library
    }
    found = strays(fn, report)
    assert any("imagemint.adapters.chain.zora" in s for s in found)
    assert any(s.startswith("imagemint_dev") for s in found)
    assert any(s.startswith("web3:") for s in found)


API_FUNCTIONS = [
    name
    for name in FUNCTIONS
    if any(ev.get("Type") == "HttpApi" for ev in template().functions()[name].events.values())
]
# What an API function's init may load of ours: the package, the lazy-module proxy, the logger.
API_INIT_OURS = {"imagemint", "imagemint.lazy", "imagemint.observability"}


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_an_api_functions_init_builds_no_model(name):
    """Issue 9's cold-start budget, checked by what is imported rather than by a timer: an API
    function's init is Powertools' resolver and the logger; its dialect, models, settings and wiring
    (every pydantic model) load with the first request, through names the probe loaded above."""
    report = reports()[name]
    at_init = set(report["at_init"])
    assert {m for m in at_init if m.split(".")[0] == "imagemint"} <= API_INIT_OURS
    # (Powertools itself imports botocore's top package, a few names; no client machinery.)
    assert not at_init & {"pydantic.main", "pydantic.fields", "boto3", "botocore.client", "botocore.session"}
    assert any(m.startswith("imagemint.api.") for m in report["later"])
    if name != "DocsFunction":  # the contract's pages need neither deps nor models
        assert "imagemint.wiring" in report["later"]
        assert "pydantic.main" in report["loaded"]  # ...and the first request does build them
