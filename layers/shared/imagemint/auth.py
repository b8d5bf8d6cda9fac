"""API keys and accounts.

A key looks like ``im_sk_<43 random url-safe chars>``; only its HMAC-SHA256
under the server secret is stored (``key#<hash>`` items). The secret comes from
settings locally and from SSM / Secrets Manager through Powertools Parameters
in AWS. Key values are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from functools import lru_cache

from imagemint.errors import Forbidden, InternalError, NotFound, Unauthorized
from imagemint.models import Account, ApiKeyRecord, now
from imagemint.ports import AccountStore
from imagemint.settings import Settings

KEY_PREFIX = "im_sk_"


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
) -> tuple[Account, str]:
    account = Account(account_id=account_id or str(uuid.uuid4()), name=name, credits=credits)
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
) -> str:
    key = key or new_key()
    store.put_key(
        ApiKeyRecord(
            key_hash=hash_key(settings, key), account_id=account_id, prefix=key[:10], expires_at=expires_at
        )
    )
    return key


def authenticate(store: AccountStore, settings: Settings, key: str | None) -> Account:
    """The account owning ``key``; Unauthorized for a missing, unknown, expired or revoked key."""
    if not key:
        raise Unauthorized("Missing API key")
    record = store.get_key(hash_key(settings, key))
    if record is None:
        raise Unauthorized("Invalid API key")
    if record.revoked:
        raise Unauthorized("API key revoked")
    if record.expires_at is not None and record.expires_at <= now():
        raise Unauthorized("API key expired")
    account = store.get_account(record.account_id)
    if account is None:
        raise Unauthorized("Invalid API key")
    return account


def require_owner(account: Account, account_id: str) -> None:
    if account.account_id != account_id:
        raise Forbidden("API key does not belong to this account")


def get_account_or_404(store: AccountStore, account_id: str) -> Account:
    account = store.get_account(account_id)
    if account is None:
        raise NotFound("Account not found")
    return account
