"""The Zora 1155 artifacts packaged in the dev package are the pinned npm package's, byte for byte.

The embedded chain deploys from ``dev/imagemint_dev/embedded/zora_artifacts`` (no npm needed to
serve); this test holds that copy to ``@zoralabs/zora-1155-contracts`` as pinned in
``tests/peers/package.json`` and installed by ``make setup``. After bumping the pin, re-run
``python -m imagemint_dev.embedded.extract_zora_artifacts``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagemint_dev.embedded import extract_zora_artifacts as extractor
from imagemint_dev.embedded.zora_deploy import PACKAGED_ARTIFACTS

pytestmark = pytest.mark.integration

PEERS = Path(__file__).resolve().parents[1] / "peers"
INSTALLED = PEERS / "node_modules" / "@zoralabs" / "zora-1155-contracts"


@pytest.fixture(scope="module")
def installed() -> Path:
    if not (INSTALLED / "package.json").is_file():
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{extractor.PACKAGE} is not installed in tests/peers (make setup)")
        pytest.skip(f"{extractor.PACKAGE} is not installed in tests/peers (make setup)")
    return INSTALLED


def test_the_extractor_pins_the_version_tests_peers_installs(installed: Path):
    package = json.loads((PEERS / "package.json").read_text())
    lock = json.loads((PEERS / "package-lock.json").read_text())
    meta = json.loads((installed / "package.json").read_text())
    assert package["dependencies"][extractor.PACKAGE] == extractor.VERSION
    assert lock["packages"][f"node_modules/{extractor.PACKAGE}"]["version"] == extractor.VERSION
    assert (meta["name"], meta["version"]) == (extractor.PACKAGE, extractor.VERSION)


def test_the_packaged_artifacts_equal_the_npm_package_byte_for_byte(installed: Path):
    for rel in extractor.copied_files():
        npm = installed / rel if rel == "LICENSE" else installed / "out" / rel
        assert (PACKAGED_ARTIFACTS / rel).read_bytes() == npm.read_bytes(), rel
    assert extractor.differences(installed) == []
