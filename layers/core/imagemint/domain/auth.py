"""API keys and accounts.

A key looks like ``im_sk_<43 random url-safe chars>``; only its HMAC-SHA256
under the server secret is stored (``key#<hash>`` items), with the first
``PREFIX_CHARS`` characters (``im_sk_`` and 8 random ones) kept to show to
humans. The secret comes from settings locally and from SSM / Secrets Manager
through Powertools Parameters in AWS. Key values are never logged.

A key is refused (401) when it is missing, unknown, revoked, expired, or its
account is gone. Its ``last_used_at`` is written at most once a minute
(``LAST_USED_EVERY_S``), so a busy key costs one write a minute, not one per
request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache

from imagemint.domain.models import Account, ApiKeyRecord, now
from imagemint.domain.ports import AccountStore
from imagemint.errors import Forbidden, InternalError, NotFound, Unauthorized
from imagemint.observability import logger
from imagemint.settings import Settings

KEY_PREFIX = "im_sk_"
PREFIX_CHARS = len(KEY_PREFIX) + 8
MAX_KEY_CHARS = 128
LAST_USED_EVERY_S = 60.0


@lru_cache(maxsize=4)
def _secret(settings: Settings) -> bytes:
    if settings.key_hash_secret is not None:
        return settings.key_hash_secret.get_secret_value().encode()
    if settings.key_hash_secret_param:
        from aws_lambda_powertools.utilities import parameters

        name = settings.key_hash_secret_param
        if name.startswith("secret:"):
            value = parameters.get_secret(name.removeprefix("secret:"), max_age=300)
        else:
            value = parameters.get_parameter(name, decrypt=True, max_age=300)
        return str(value).encode()
    raise InternalError("No key hash secret configured")


def clear_secret_cache() -> None:
    _secret.cache_clear()


def derived_secret(settings: Settings, label: str) -> bytes:
    """A secret for another purpose (webhook signing), derived from the key-hash secret (nothing to store)."""
    return hmac.new(_secret(settings), label.encode(), hashlib.sha256).digest()


def hash_key(settings: Settings, key: str) -> str:
    return hmac.new(_secret(settings), key.encode(), hashlib.sha256).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_account(
    store: AccountStore,
    settings: Settings,
    *,
    name: str,
    credits: int = 0,
    account_id: str | None = None,
    key: str | None = None,
    plan: str = "free",
    wallet_address: str | None = None,
) -> tuple[Account, str]:
    account = Account(
        account_id=account_id or str(uuid.uuid4()),
        name=name,
        credits=credits,
        plan=plan,
        wallet_address=wallet_address,
    )
    store.create_account(account)
    key = issue_key(store, settings, account.account_id, key=key)
    return account, key


def issue_key(
    store: AccountStore,
    settings: Settings,
    account_id: str,
    *,
    key: str | None = None,
    expires_at: float | None = None,
    name: str | None = None,
    rpm: int | None = None,
    concurrency: int | None = None,
) -> str:
    """A new key for ``account_id``; the value is returned once and never stored."""
    if store.get_account(account_id) is None:
        raise NotFound("Account not found")
    key = key or new_key()
    store.put_key(
        ApiKeyRecord(
            key_hash=hash_key(settings, key),
            account_id=account_id,
            prefix=key[:PREFIX_CHARS],
            expires_at=expires_at,
            name=name,
            rpm=rpm,
            concurrency=concurrency,
        )
    )
    return key


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account, and the key it used (None for a keyless legacy call)."""

    account: Account
    key: ApiKeyRecord | None = None


def authenticate_key(store: AccountStore, settings: Settings, key: str | None) -> Principal:
    """The account and key record of ``key``; Unauthorized for a missing, unknown, expired or revoked key."""
    if not key:
        raise Unauthorized("Missing API key")
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        raise Unauthorized("Invalid API key")
    record = store.get_key(hash_key(settings, key))
    if record is None:
        raise Unauthorized("Invalid API key")
    at = now()
    if record.revoked:
        raise Unauthorized("API key revoked")
    if record.expires_at is not None and record.expires_at <= at:
        raise Unauthorized("API key expired")
    account = store.get_account(record.account_id)
    if account is None:
        raise Unauthorized("Invalid API key")
    if record.last_used_at is None or record.last_used_at < at - LAST_USED_EVERY_S:
        try:
            store.touch_key(record.key_hash, at, LAST_USED_EVERY_S)
        except Exception:  # bookkeeping must never refuse a valid key
            logger.warning("could not record key use", extra={"key_prefix": record.prefix})
    return Principal(account=account, key=record)


def authenticate(store: AccountStore, settings: Settings, key: str | None) -> Account:
    """The account owning ``key``; Unauthorized for a missing, unknown, expired or revoked key."""
    return authenticate_key(store, settings, key).account


def revoke_key(store: AccountStore, settings: Settings, key: str) -> ApiKeyRecord:
    """Revoke a key given its value (NotFound when it is not one of ours)."""
    record = store.revoke_key(hash_key(settings, key), now())
    if record is None:
        raise NotFound("No such API key")
    return record


def find_keys(store: AccountStore, account_id: str, prefix: str) -> list[ApiKeyRecord]:
    """The keys of an account whose shown prefix starts with ``prefix`` (admin: revoke by prefix)."""
    keys, _ = store.list_account_items(account_id)
    return [k for k in keys if k.prefix.startswith(prefix)]


def require_owner(account: Account, account_id: str) -> None:
    if account.account_id != account_id:
        raise Forbidden("API key does not belong to this account")


def get_account_or_404(store: AccountStore, account_id: str) -> Account:
    account = store.get_account(account_id)
    if account is None:
        raise NotFound("Account not found")
    return account
