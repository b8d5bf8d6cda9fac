"""provider_mode=live never runs the offline provider: an unreadable key is a 503, and nothing is charged.

Through the local runtime (moto's SSM has no such parameter, as on a fresh
deploy that skipped a step), on two dialects.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def call(url: str, body: dict | None = None, key: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # our own 127.0.0.1 runtime
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def credits(account_id: str) -> int:
    from imagemint.wiring import get_deps

    account = get_deps().accounts.get_account(account_id)
    assert account is not None
    return account.credits


def test_live_mode_with_an_unreadable_key_answers_503_and_charges_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FAL_KEY", raising=False)
    with start(root=ROOT, state_dir=tmp_path, port=0, extra_env={"IMAGEMINT_PROVIDER_MODE": "live"}) as rt:
        acct, key = rt.account["account_id"], rt.account["api_key"]
        before = credits(acct)

        status, body = call(f"{rt.base_url}/v1/images/generations", {"prompt": "a koi"}, key)
        assert status == 503, body
        assert body["error"]["param"] == "/imagemint/openai-api-key"
        assert "cannot be read" in body["error"]["message"]

        status, body = call(f"{rt.base_url}/api/image/generate?prompt=koi&account_id={acct}")
        assert status == 503, body
        assert "cannot be read" in body["error"]

        assert credits(acct) == before  # charged at admission, returned by the failure path
