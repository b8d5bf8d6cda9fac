"""After ``sam build``: what each function carries, against Lambda's limits.

    python tests/bench/layer_sizes.py [--sam PATH] [--build-dir DIR] [--no-build]

Runs ``sam build`` (unless ``--no-build``), then prints, from the built
artifacts:

* each layer: unzipped size, zipped size (deflate, as ``sam`` zips it), file
  count, and whether its ``.py`` files all have a ``__pycache__/*.cpython-312.pyc``;
* each function: its code, its layers (Globals first) and the unzipped total
  Lambda counts against its limit.

Exits non-zero when a function's code plus layers pass :data:`MAX_UNZIPPED`
(Lambda's 250 MB), a layer zip passes :data:`MAX_LAYER_ZIP` (45 MB: under the
50 MB of a direct upload, which ``sam sync`` uses), a layer ships boto3 or
botocore (the runtime's own copy is compiled and current; a second one only
shadows it) or one of their dependencies outside botocore's range (a layer
comes before the runtime on ``sys.path``), a layer has modules without python3.12 ``.pyc`` (or with ``.pyc``
of another Python), or two layers a function attaches carry one distribution
in two versions (they overlay in ``/opt/python``: files of both would mix).

The layers are built by ``layers/<name>/Makefile`` with ``python3.12``; when
that name does not run here but pyenv has a 3.12, the build gets
``PYENV_VERSION`` set to it.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
MAX_UNZIPPED = 250 * MB
MAX_LAYER_ZIP = 45 * MB
RUNTIME_OWN = ("boto3", "botocore")
PYC_TAG = "cpython-312"


@dataclass
class Layer:
    name: str
    unzipped: int
    zipped: int
    files: int
    missing_pyc: list[str]
    foreign_pyc: list[str]
    runtime_copies: list[str]
    dists: dict[str, str]  # canonical name -> version


def tree_size(folder: Path) -> tuple[int, int]:
    total = files = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            files += 1
    return total, files


def zip_size(folder: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
        return target.stat().st_size


def pyc_check(folder: Path) -> tuple[list[str], list[str]]:
    """(.py files with no python3.12 .pyc beside them, .pyc files of another interpreter)."""
    missing, foreign = [], []
    for py in folder.rglob("*.py"):
        pyc = py.parent / "__pycache__" / f"{py.stem}.{PYC_TAG}.pyc"
        if not pyc.is_file():
            missing.append(py.relative_to(folder).as_posix())
    for pyc in folder.rglob("__pycache__/*.pyc"):
        if f".{PYC_TAG}." not in pyc.name:
            foreign.append(pyc.relative_to(folder).as_posix())
    return missing, foreign


def distributions(site: Path) -> dict[str, str]:
    out = {}
    for info in site.glob("*.dist-info"):
        m = re.fullmatch(r"(.+?)-([^-]+)\.dist-info", info.name)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def measure_layer(name: str, folder: Path) -> Layer:
    site = folder / "python"
    unzipped, files = tree_size(folder)
    missing, foreign = pyc_check(folder)
    runtime = [d for d in RUNTIME_OWN if (site / d).exists()]
    return Layer(name, unzipped, zip_size(folder), files, missing, foreign, runtime, distributions(site))


def runtime_ranges() -> dict[str, SpecifierSet]:
    """What boto3 / botocore (as pinned for development, as the runtime ships them) need of their deps."""
    out: dict[str, SpecifierSet] = {}
    for dist in RUNTIME_OWN:
        for text in metadata.requires(dist) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                name = canonicalize_name(req.name)
                out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out


def python312_env() -> dict[str, str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    if subprocess.run(["python3.12", "-c", ""], capture_output=True, env=env).returncode == 0:
        return env
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout
        found = [v.strip() for v in versions.splitlines() if re.fullmatch(r"3\.12\.\d+", v.strip())]
        if found:
            env["PYENV_VERSION"] = ":".join([found[-1], *filter(None, [env.get("PYENV_VERSION")])])
            return env
    raise SystemExit("python3.12 is needed to build the layers (their .pyc are compiled for the runtime)")


def build(sam: str, build_dir: Path) -> None:
    cmd = [sam, "build", "--build-dir", str(build_dir)]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=python312_env())
    if done.returncode != 0:
        raise SystemExit(f"sam build failed ({done.returncode})")


def mb(n: int) -> str:
    return f"{n / MB:7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sam", default=str(ROOT / ".venv-sam" / "bin" / "sam"))
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--no-build", action="store_true", help="measure the existing build")
    args = parser.parse_args()
    if not args.no_build:
        build(args.sam, args.build_dir)

    sys.path[:0] = [str(ROOT / "dev")]
    from imagemint_dev.local.template import Template

    template = Template.load(ROOT / "template.yaml")
    layers = {name: measure_layer(name, args.build_dir / name) for name in template.layers()}
    failures: list[str] = []
    ranges = runtime_ranges()

    print(f"\n{'layer':<16} {'unzipped MB':>11} {'zip MB':>7} {'files':>6}  py3.12 .pyc")
    for layer in layers.values():
        pyc = "all" if not layer.missing_pyc else f"{len(layer.missing_pyc)} .py without"
        print(f"{layer.name:<16} {mb(layer.unzipped):>11} {mb(layer.zipped):>7} {layer.files:>6}  {pyc}")
        if layer.zipped > MAX_LAYER_ZIP:
            failures.append(f"{layer.name}: zip {mb(layer.zipped).strip()} MB > {MAX_LAYER_ZIP // MB} MB")
        if layer.missing_pyc:
            failures.append(f"{layer.name}: no .{PYC_TAG}.pyc for {', '.join(layer.missing_pyc[:5])} ...")
        if layer.foreign_pyc:
            failures.append(f"{layer.name}: .pyc of another Python: {', '.join(layer.foreign_pyc[:5])} ...")
        if layer.runtime_copies:
            failures.append(f"{layer.name}: ships {', '.join(layer.runtime_copies)} (the runtime has it)")
        for dist, spec in ranges.items():
            version = layer.dists.get(dist)
            if version is not None and version not in spec:
                failures.append(
                    f"{layer.name}: {dist} {version} shadows the runtime's, outside botocore's {spec}"
                )

    print(f"\n{'function':<26} {'code kB':>7} {'total MB':>8}  layers")
    shared: dict[tuple[str, ...], list[str]] = {}
    for name, fn in sorted(template.functions().items()):
        code, _ = tree_size(args.build_dir / name)
        total = code + sum(layers[lay].unzipped for lay in fn.layers)
        print(f"{name:<26} {code / 1024:>7.1f} {mb(total):>8}  {' + '.join(fn.layers)}")
        if total > MAX_UNZIPPED:
            failures.append(f"{name}: {mb(total).strip()} MB unzipped > {MAX_UNZIPPED // MB} MB")
        seen: dict[str, tuple[str, str]] = {}
        for lay in fn.layers:
            for dist, version in layers[lay].dists.items():
                if dist in seen and seen[dist][1] != version:
                    failures.append(
                        f"{name}: {dist} {seen[dist][1]} ({seen[dist][0]}) and {version} ({lay}) overlay"
                    )
                elif dist in seen:
                    shared.setdefault((seen[dist][0], lay), []).append(f"{dist} {version}")
                seen.setdefault(dist, (lay, version))

    for (first, second), dists in sorted(shared.items()):
        unique = sorted(set(dists))
        print(f"\nsame files in {first} and {second} (one version, overlaid): {', '.join(unique)}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    limits = (
        f"every function <= {MAX_UNZIPPED // MB} MB unzipped, every layer zip <= {MAX_LAYER_ZIP // MB} MB"
    )
    print(f"\nOK: {limits}, .{PYC_TAG}.pyc everywhere, no second boto3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
