"""``lint-imports`` over the whole ``imagemint`` package: the layering contracts of pyproject.toml.

    python -m imagemint_dev.importlint [lint-imports options]    (``make lint`` runs it)

``imagemint`` spans three layer folders (``layers/core``, ``layers/providers``,
``layers/chain``), joined by ``pkgutil.extend_path`` when the package is
imported. import-linter's graph builder (grimp) finds a package's folders with
``importlib.util.find_spec``, which, before the package is imported, names only
the folder of its ``__init__.py``: plain ``lint-imports`` would check the core
layer alone and fail on the contracts that name ``imagemint.adapters.providers``
/ ``.chain`` / ``.arweave`` ("does not exist"). So this imports ``imagemint``
and ``imagemint.adapters`` first (their ``__init__`` only extend their path),
lets their specs name every folder their ``__path__`` holds, then runs
import-linter's own command line.
"""

from __future__ import annotations

import importlib
import sys

EXTENDED_PACKAGES = ("imagemint", "imagemint.adapters")


def see_every_layer() -> list[str]:
    """Make ``find_spec`` name every folder of the extended packages; the folders of ``imagemint``."""
    for name in EXTENDED_PACKAGES:
        package = importlib.import_module(name)
        locations = package.__spec__.submodule_search_locations
        for folder in package.__path__:
            if folder not in locations:
                locations.append(folder)
    return list(importlib.import_module("imagemint").__path__)


def main() -> None:
    see_every_layer()
    from importlinter.cli import lint_imports_command

    sys.exit(lint_imports_command())


if __name__ == "__main__":
    main()
