"""API keys and the auth rules of every dialect, on the in-memory fakes.

Each rule has a test that fails without it: key format and storage (only the
HMAC), expiry (to the second), revocation, a key whose account is gone, the
last-use stamp (at most once a minute), the legacy endpoint's rules (key must
own ``account_id`` -> 403, unknown account -> 404, keyless refused by the
setting -> 401), and keys never reaching the logs.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr

from events import bearer, http_event, invoke
from imagemint.domain import auth
from imagemint.domain.models import Account, now
from imagemint.errors import NotFound, Unauthorized
from imagemint.observability import logger
from imagemint.settings import Settings
from imagemint.wiring import Deps

POST_ROUTES = [
    ("openai_images", "/v1/images/generations", {"prompt": "a cat", "model": "gpt-image-1"}),
    ("content_image", "/api/content/image", {}),
    ("agentai_image", "/action/generate_image", {"prompt": "a cat"}),
]


def call(route: tuple[str, str, dict[str, Any]], key: str | None, **extra: Any) -> Any:
    function, path, body = route
    headers = bearer(key) if key else {}
    return invoke(function, http_event("POST", path, headers=headers, json_body={**body, **extra}))


def legacy(account_id: str, headers: dict[str, str] | None = None) -> Any:
    query = {"prompt": "a cat", "account_id": account_id}
    return invoke("legacy_image", http_event("GET", "/api/image/generate", query=query, headers=headers))


def error_text(reply: Any) -> str:
    body = reply.json
    err = body["error"]
    return err["message"] if isinstance(err, dict) else err


# --------------------------------------------------------------------------- keys


def test_a_key_is_prefixed_random_and_stored_only_as_its_hmac(
    deps: Deps, account: tuple[Account, str]
) -> None:
    acc, key = account
    assert key.startswith("im_sk_") and len(key) == len("im_sk_") + 43
    (record,) = deps.accounts.keys.values()  # type: ignore[attr-defined]
    assert record.key_hash == auth.hash_key(deps.settings, key)
    assert record.prefix == key[:14] and len(record.prefix) == auth.PREFIX_CHARS
    assert key not in repr(record.model_dump())
    other = auth.issue_key(deps.accounts, deps.settings, acc.account_id)
    assert other != key and other[:14] != key[:14]


def test_the_hash_is_keyed_by_the_server_secret(settings: Settings) -> None:
    other = settings.model_copy(update={"key_hash_secret": SecretStr("another-secret")})
    assert auth.hash_key(settings, "im_sk_x") != auth.hash_key(other, "im_sk_x")
    assert auth.hash_key(settings, "im_sk_x") == auth.hash_key(settings, "im_sk_x")


def test_a_key_for_an_unknown_account_is_not_issued(deps: Deps) -> None:
    with pytest.raises(NotFound):
        auth.issue_key(deps.accounts, deps.settings, "no-such-account")


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r[0])
def test_a_valid_key_is_accepted(deps: Deps, account: tuple[Account, str], route: Any) -> None:
    assert call(route, account[1]).status == 200


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r[0])
def test_an_expired_key_is_refused(deps: Deps, account: tuple[Account, str], route: Any) -> None:
    acc, _ = account
    key = auth.issue_key(deps.accounts, deps.settings, acc.account_id, expires_at=now() - 1)
    reply = call(route, key)
    assert reply.status == 401 and "expired" in error_text(reply)


def test_a_key_expires_to_the_second(deps: Deps, account: tuple[Account, str]) -> None:
    acc, _ = account
    soon = auth.issue_key(deps.accounts, deps.settings, acc.account_id, expires_at=now() + 60)
    assert auth.authenticate(deps.accounts, deps.settings, soon).account_id == acc.account_id
    record = deps.accounts.get_key(auth.hash_key(deps.settings, soon))
    deps.accounts.put_key(record.model_copy(update={"expires_at": now()}))
    with pytest.raises(Unauthorized, match="expired"):
        auth.authenticate(deps.accounts, deps.settings, soon)


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r[0])
def test_a_revoked_key_is_refused(deps: Deps, account: tuple[Account, str], route: Any) -> None:
    acc, key = account
    assert call(route, key).status == 200
    record = auth.revoke_key(deps.accounts, deps.settings, key)
    assert record.revoked and record.revoked_at is not None
    reply = call(route, key)
    assert reply.status == 401 and "revoked" in error_text(reply)
    # Other keys of the account still work.
    assert call(route, auth.issue_key(deps.accounts, deps.settings, acc.account_id)).status == 200


def test_revoking_by_prefix_finds_exactly_one_key(deps: Deps, account: tuple[Account, str]) -> None:
    acc, key = account
    auth.issue_key(deps.accounts, deps.settings, acc.account_id)
    assert len(auth.find_keys(deps.accounts, acc.account_id, "im_sk_")) == 2
    (found,) = auth.find_keys(deps.accounts, acc.account_id, key[:14])
    deps.accounts.revoke_key(found.key_hash, now())
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate(deps.accounts, deps.settings, key)


def test_revoking_an_unknown_key_is_not_found(deps: Deps) -> None:
    with pytest.raises(NotFound):
        auth.revoke_key(deps.accounts, deps.settings, "im_sk_" + "x" * 43)


@pytest.mark.parametrize(
    "key", ["im_sk_" + "A" * 43, "sk-not-ours", "im_sk_" + "A" * 200], ids=["unknown", "foreign", "too-long"]
)
@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r[0])
def test_an_unknown_key_is_refused(deps: Deps, account: tuple[Account, str], route: Any, key: str) -> None:
    reply = call(route, key)
    assert reply.status == 401


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r[0])
def test_no_key_is_refused(deps: Deps, account: tuple[Account, str], route: Any) -> None:
    assert call(route, None).status == 401


def test_a_key_whose_account_is_gone_is_refused(deps: Deps, account: tuple[Account, str]) -> None:
    acc, key = account
    del deps.accounts.accounts[acc.account_id]  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized):
        auth.authenticate(deps.accounts, deps.settings, key)


def test_last_use_is_written_at_most_once_a_minute(deps: Deps, account: tuple[Account, str]) -> None:
    acc, key = account
    key_hash = auth.hash_key(deps.settings, key)
    assert deps.accounts.get_key(key_hash).last_used_at is None
    writes: list[float] = []
    real_touch = deps.accounts.touch_key

    def touch(h: str, at: float, min_interval_s: float) -> bool:
        writes.append(at)
        return real_touch(h, at, min_interval_s)

    deps.accounts.touch_key = touch  # type: ignore[method-assign]
    for _ in range(5):
        auth.authenticate(deps.accounts, deps.settings, key)
    first = deps.accounts.get_key(key_hash).last_used_at
    assert first is not None and abs(first - now()) < 5
    assert len(writes) == 1  # four more uses within the minute: no write at all
    # A minute later the stamp moves.
    record = deps.accounts.get_key(key_hash)
    deps.accounts.put_key(record.model_copy(update={"last_used_at": first - 61}))
    auth.authenticate(deps.accounts, deps.settings, key)
    assert len(writes) == 2 and deps.accounts.get_key(key_hash).last_used_at >= first


def test_the_store_refuses_a_second_stamp_within_the_minute(deps: Deps, account: tuple[Account, str]) -> None:
    """Two cold functions racing: the conditional write lets one through."""
    key_hash = auth.hash_key(deps.settings, account[1])
    at = now()
    assert deps.accounts.touch_key(key_hash, at, 60) is True
    assert deps.accounts.touch_key(key_hash, at + 30, 60) is False
    assert deps.accounts.touch_key(key_hash, at + 61, 60) is True


def test_a_failing_last_use_write_does_not_refuse_a_valid_key(
    deps: Deps, account: tuple[Account, str]
) -> None:
    def broken(*args: Any) -> bool:
        raise ConnectionError("throttled")

    deps.accounts.touch_key = broken  # type: ignore[method-assign]
    assert auth.authenticate(deps.accounts, deps.settings, account[1]).account_id == account[0].account_id


def test_openai_takes_only_bearer(deps: Deps, account: tuple[Account, str]) -> None:
    function, path, body = POST_ROUTES[0]
    reply = invoke(function, http_event("POST", path, headers={"x-api-key": account[1]}, json_body=body))
    assert reply.status == 401


# --------------------------------------------------------------------------- legacy rules


def test_legacy_keyless_call_is_allowed_by_default(deps: Deps, account: tuple[Account, str]) -> None:
    assert legacy(account[0].account_id).status == 200


def test_legacy_keyless_call_is_refused_when_the_setting_requires_a_key(
    deps: Deps, account: tuple[Account, str]
) -> None:
    deps.settings = deps.settings.model_copy(update={"legacy_require_key": True})
    reply = legacy(account[0].account_id)
    assert reply.status == 401 and "API key is required" in reply.json["error"]
    assert legacy(account[0].account_id, {"x-api-key": account[1]}).status == 200


def test_legacy_key_of_another_account_is_403(deps: Deps, account: tuple[Account, str]) -> None:
    _, other_key = auth.create_account(deps.accounts, deps.settings, name="other", credits=100)
    reply = legacy(account[0].account_id, {"x-api-key": other_key})
    assert reply.status == 403
    assert deps.accounts.get_account(account[0].account_id).credits == 1000  # nothing charged


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_legacy_key_of_the_account_is_accepted(deps: Deps, account: tuple[Account, str], header: str) -> None:
    value = account[1] if header == "x-api-key" else f"Bearer {account[1]}"
    assert legacy(account[0].account_id, {header: value}).status == 200


def test_legacy_unknown_account_is_404(deps: Deps) -> None:
    reply = legacy("7d4c8a52-0d3a-4d53-9a47-53d0e7c0a001")
    assert reply.status == 404 and reply.json == {"error": "Account not found"}
    assert not deps.jobs.jobs  # type: ignore[attr-defined]  # refused before anything is recorded


def test_legacy_revoked_or_expired_key_is_401_even_for_its_own_account(
    deps: Deps, account: tuple[Account, str]
) -> None:
    acc, key = account
    expired = auth.issue_key(deps.accounts, deps.settings, acc.account_id, expires_at=now() - 1)
    assert legacy(acc.account_id, {"x-api-key": expired}).status == 401
    auth.revoke_key(deps.accounts, deps.settings, key)
    assert legacy(acc.account_id, {"x-api-key": key}).status == 401


# --------------------------------------------------------------------------- logs


def test_keys_never_reach_the_logs(
    deps: Deps,
    account: tuple[Account, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    acc, key = account
    expired = auth.issue_key(deps.accounts, deps.settings, acc.account_id, expires_at=now() - 1)
    revoked = auth.issue_key(deps.accounts, deps.settings, acc.account_id)
    auth.revoke_key(deps.accounts, deps.settings, revoked)
    wrong = "im_sk_" + "W" * 43
    caplog.set_level(logging.DEBUG)
    old_level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        for route in POST_ROUTES:
            assert call(route, key).status == 200
            for bad in (expired, revoked, wrong):
                assert call(route, bad).status == 401
            call(route, key, prompt=None)  # a 400 after auth
        assert legacy(acc.account_id, {"x-api-key": key}).status == 200
        assert legacy(acc.account_id, {"x-api-key": wrong}).status == 401
    finally:
        logger.setLevel(old_level)
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "job accepted" in logged  # the logs were captured
    for secret in (key, expired, revoked, wrong):
        assert secret not in logged
        assert secret[14:30] not in logged  # nor a telling part of one
