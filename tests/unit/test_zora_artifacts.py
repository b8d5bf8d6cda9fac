"""The Zora 1155 artifacts packaged with the dev package: complete, unedited, and enough to mint.

(That they equal the pinned npm package byte for byte is
``tests/integration/test_zora_artifacts_pinned.py``, which has the npm tree.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagemint_dev.embedded import extract_zora_artifacts as extractor
from imagemint_dev.embedded.zora_deploy import (
    ARTIFACTS_ENV,
    PACKAGED_ARTIFACTS,
    SOURCES,
    default_artifacts_dir,
    load_artifact,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_packaged_folder_holds_what_its_manifest_says_and_nothing_else():
    manifest = json.loads((PACKAGED_ARTIFACTS / extractor.MANIFEST).read_text())
    assert (manifest["package"], manifest["version"]) == (extractor.PACKAGE, extractor.VERSION)
    assert list(manifest["sha256"]) == extractor.copied_files()
    for rel, digest in manifest["sha256"].items():
        assert hashlib.sha256((PACKAGED_ARTIFACTS / rel).read_bytes()).hexdigest() == digest, rel
    on_disk = sorted(
        p.relative_to(PACKAGED_ARTIFACTS).as_posix()
        for p in PACKAGED_ARTIFACTS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert on_disk == sorted([*extractor.copied_files(), extractor.MANIFEST])
    assert len(SOURCES) == 9


def test_the_default_is_the_packaged_folder_and_the_env_var_overrides_it(monkeypatch, tmp_path):
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_artifacts_dir() == PACKAGED_ARTIFACTS
    assert "tests" not in PACKAGED_ARTIFACTS.relative_to(REPO).parts
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path))
    assert default_artifacts_dir() == tmp_path


def _fake_npm_package(root: Path) -> Path:
    """A folder laid out like the npm package, built from the packaged copy."""
    package = root / "zora-1155-contracts"
    for rel in extractor.copied_files():
        dest = package / rel if rel == "LICENSE" else package / "out" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGED_ARTIFACTS / rel, dest)
    meta = {"name": extractor.PACKAGE, "version": extractor.VERSION}
    (package / "package.json").write_text(json.dumps(meta))
    return package


def test_the_extractor_reproduces_the_packaged_folder_and_sees_a_changed_byte(tmp_path):
    package = _fake_npm_package(tmp_path)
    target = tmp_path / "copy"
    extractor.extract(package, target)
    for rel in [*extractor.copied_files(), extractor.MANIFEST]:
        assert (target / rel).read_bytes() == (PACKAGED_ARTIFACTS / rel).read_bytes(), rel
    assert extractor.differences(package, target) == []

    impl = package / "out" / "ZoraCreator1155Impl.sol" / "ZoraCreator1155Impl.json"
    raw = bytearray(impl.read_bytes())
    raw[-2] ^= 1
    impl.write_bytes(bytes(raw))
    assert extractor.differences(package, target) == [
        "ZoraCreator1155Impl.sol/ZoraCreator1155Impl.json",
        extractor.MANIFEST,
    ]


def test_the_extractor_refuses_another_version(tmp_path):
    package = _fake_npm_package(tmp_path)
    (package / "package.json").write_text(json.dumps({"name": extractor.PACKAGE, "version": "2.13.1"}))
    with pytest.raises(extractor.ExtractError, match="2.13.1"):
        extractor.extract(package, tmp_path / "copy")
    assert extractor.main(["--from", str(tmp_path / "nowhere"), "--check"]) == 2


def test_the_deployer_reads_abi_and_linkable_bytecode_from_the_packaged_copy():
    impl = load_artifact("ZoraCreator1155Impl", PACKAGED_ARTIFACTS)
    assert impl.link_references  # the DelegatedTokenCreation library placeholder
    assert "__$" in impl.bytecode
    assert any(item.get("name") == "setupNewToken" for item in impl.abi)


_MINT_ALONE = """
import json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from imagemint_dev.embedded.chain import LocalChain
from imagemint_dev.embedded.zora_deploy import default_artifacts_dir
chain = LocalChain()
minter = chain.minter()
creator = "0x000000000000000000000000000000000000dEaD"
moment = minter.mint("ar://packaged", creator, minter.ensure_contract(creator, None, "Packaged"))
print(json.dumps({"dir": str(default_artifacts_dir()), "token": moment.tokenId, "opened": opened}))
"""


def test_the_embedded_chain_mints_from_the_packaged_artifacts_with_no_tests_folder(tmp_path):
    """A fresh interpreter, cwd outside the repo, no override: nothing under tests/ is opened."""
    env = {k: v for k, v in os.environ.items() if k != ARTIFACTS_ENV and not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-c", _MINT_ALONE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["token"] == "1"
    assert Path(result["dir"]) == PACKAGED_ARTIFACTS
    opened = [Path(p) for p in result["opened"] if os.path.isabs(p)]
    artifacts = {
        p.relative_to(PACKAGED_ARTIFACTS).as_posix() for p in opened if p.is_relative_to(PACKAGED_ARTIFACTS)
    }
    assert artifacts == {f"{source}/{name}.json" for name, source in SOURCES.items()}
    assert not [p for p in opened if p.is_relative_to(REPO / "tests") or "node_modules" in p.parts]
