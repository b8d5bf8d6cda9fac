"""A provenance step that fails keeps everything before it: the image, the archive, and a warning.

Its own module: one local runtime per process at a time (moto's state is process-wide).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:  # our own 127.0.0.1 runtime
        return r.status, r.read()


def test_failed_mint_keeps_image_and_archive(tmp_path):
    with start(root=ROOT, state_dir=tmp_path, port=0, extra_env={"IMAGEMINT_CHAIN_MODE": "off"}) as rt:
        acct = rt.account["account_id"]
        status, body = get(f"{rt.base_url}/api/image/generate?prompt=partial&account_id={acct}")
        assert status == 200
        res = json.loads(body)
        assert res["images"][0]["base64"] and res["arweaveResult"]["id"] and res["imageUrl"]
        assert res["moment"] is None
        assert any("Minting the moment failed" in w for w in res["warnings"])
