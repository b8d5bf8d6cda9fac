"""Copy the Zora 1155 build artifacts the embedded chain deploys into this package.

    python -m imagemint_dev.embedded.extract_zora_artifacts [--from DIR] [--check]

``DIR`` is the installed npm package ``@zoralabs/zora-1155-contracts`` (default:
``tests/peers/node_modules/@zoralabs/zora-1155-contracts`` in this repository,
installed by ``make setup``). Its ``package.json`` must name :data:`PACKAGE` at
:data:`VERSION`, the pin in ``tests/peers/package.json``.

The files copied, byte for byte, into ``zora_artifacts/`` beside this module:
the Foundry ``out/<Source>.sol/<Name>.json`` of each contract the deployer reads
(:data:`imagemint_dev.embedded.zora_deploy.SOURCES`) and the package's MIT
``LICENSE``. ``SOURCE.json`` records the package, its version and each file's
SHA-256. ``--check`` copies nothing and exits 1 if the packaged folder differs
from ``DIR``.

To move to another release: change the pin in ``tests/peers/package.json`` and
:data:`VERSION`, run ``make setup`` and this script; the integration test
``test_zora_artifacts_pinned`` then holds the two together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from imagemint_dev.embedded.zora_deploy import PACKAGED_ARTIFACTS, SOURCES

PACKAGE = "@zoralabs/zora-1155-contracts"
VERSION = "2.13.2"
MANIFEST = "SOURCE.json"
_REPO = Path(__file__).resolve().parents[3]
DEFAULT_PACKAGE_DIR = _REPO / "tests" / "peers" / "node_modules" / "@zoralabs" / "zora-1155-contracts"


class ExtractError(RuntimeError):
    """The npm package is missing, another package, or another version."""


def copied_files() -> list[str]:
    """The package-relative paths that are copied, in order (``out/`` stripped)."""
    return [f"{source}/{name}.json" for name, source in SOURCES.items()] + ["LICENSE"]


def _source_path(package_dir: Path, relative: str) -> Path:
    return package_dir / relative if relative == "LICENSE" else package_dir / "out" / relative


def check_package(package_dir: Path) -> None:
    """Raise :class:`ExtractError` unless ``package_dir`` is :data:`PACKAGE` at :data:`VERSION`."""
    try:
        meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExtractError(f"no npm package at {package_dir} (run `make setup`, or pass --from)") from None
    found = (meta.get("name"), meta.get("version"))
    if found != (PACKAGE, VERSION):
        raise ExtractError(f"{package_dir} holds {found[0]}@{found[1]}, expected {PACKAGE}@{VERSION}")


def manifest_bytes(folder: Path) -> bytes:
    """``SOURCE.json`` for the copied files in ``folder``."""
    files = {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in copied_files()}
    body = {"package": PACKAGE, "version": VERSION, "sha256": files}
    return (json.dumps(body, indent=2) + "\n").encode()


def differences(package_dir: Path, target: Path = PACKAGED_ARTIFACTS) -> list[str]:
    """The files of ``target`` that are missing or not byte-equal to ``package_dir``'s (and the manifest)."""
    check_package(package_dir)
    differ = []
    for rel in copied_files():
        mine = target / rel
        if not mine.is_file() or mine.read_bytes() != _source_path(package_dir, rel).read_bytes():
            differ.append(rel)
    manifest = target / MANIFEST
    if differ or not manifest.is_file() or manifest.read_bytes() != manifest_bytes(target):
        differ.append(MANIFEST)
    return differ


def extract(package_dir: Path, target: Path = PACKAGED_ARTIFACTS) -> list[Path]:
    """Copy the files into ``target`` (replacing what it held); return the paths written."""
    check_package(package_dir)
    sources = {rel: _source_path(package_dir, rel) for rel in copied_files()}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise ExtractError(f"missing in {package_dir}: {', '.join(missing)}")
    if target.exists():
        shutil.rmtree(target)
    written = []
    for rel, source in sources.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(source.read_bytes())
        written.append(dest)
    (target / MANIFEST).write_bytes(manifest_bytes(target))
    return [*written, target / MANIFEST]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagemint_dev.embedded.extract_zora_artifacts")
    parser.add_argument("--from", dest="package_dir", type=Path, default=DEFAULT_PACKAGE_DIR)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    try:
        if args.check:
            differ = differences(args.package_dir)
            for rel in differ:
                print(f"differs: {rel}", file=sys.stderr)
            return 1 if differ else 0
        written = extract(args.package_dir)
    except ExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(path.stat().st_size for path in written)
    print(f"{len(written)} files, {total:,} bytes from {PACKAGE}@{VERSION} into {PACKAGED_ARTIFACTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
