"""Arweave wallets: RSA-4096 keys as JWK dicts.

A wallet is the JWK dict itself (``kty``, ``n``, ``e``, ``d``, ``p``, ``q``,
``dp``, ``dq``, ``qi``; base64url without padding). The public key modulus
``n`` is the transaction ``owner``; the address is
``base64url(sha256(n bytes))``. ``cryptography`` is imported inside the
functions that need it so importing this module stays cheap.

In AWS the JWK is a SecureString SSM parameter or a Secrets Manager secret,
read through Powertools Parameters (:func:`load_wallet_from_parameter`).
Error messages never contain key material.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from imagemint.errors import WalletError

#: Arweave accepts RSA owners of exactly 4096 bits (a 512-byte modulus).
KEY_BITS = 4096
PUBLIC_EXPONENT = 65537
_PUBLIC_FIELDS = ("n", "e")
_PRIVATE_FIELDS = ("d", "p", "q", "dp", "dq", "qi")
SECRET_PREFIX = "secret:"  # noqa: S105 (a name prefix, not a secret)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding; reject anything that is not base64url."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    raw = raw.rstrip(b"=")
    if len(raw) % 4 == 1:
        raise ValueError("invalid base64url length")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)


def _int_to_b64(value: int) -> str:
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _b64_to_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def generate_wallet() -> dict[str, str]:
    """A new RSA-4096 JWK, generated offline (0.5–2 s)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    priv = key.private_numbers()
    pub = priv.public_numbers
    return {
        "kty": "RSA",
        "n": _int_to_b64(pub.n),
        "e": _int_to_b64(pub.e),
        "d": _int_to_b64(priv.d),
        "p": _int_to_b64(priv.p),
        "q": _int_to_b64(priv.q),
        "dp": _int_to_b64(priv.dmp1),
        "dq": _int_to_b64(priv.dmq1),
        "qi": _int_to_b64(priv.iqmp),
    }


def _validate(jwk: Any) -> dict[str, str]:
    if not isinstance(jwk, dict):
        raise WalletError("The Arweave wallet is not a JWK object")
    if jwk.get("kty") != "RSA":
        raise WalletError("The Arweave wallet is not an RSA JWK")
    missing = [f for f in (*_PUBLIC_FIELDS, "d") if not isinstance(jwk.get(f), str) or not jwk.get(f)]
    if missing:
        raise WalletError(f"The Arweave wallet JWK lacks {', '.join(missing)}")
    try:
        n_bytes = b64url_decode(jwk["n"])
        for name in (*_PUBLIC_FIELDS, *_PRIVATE_FIELDS):
            if name in jwk:
                b64url_decode(jwk[name])
    except ValueError:
        raise WalletError("The Arweave wallet JWK has a field that is not base64url") from None
    if len(n_bytes) * 8 != KEY_BITS or not n_bytes[0] & 0x80:
        raise WalletError(f"The Arweave wallet must be an RSA-{KEY_BITS} key")
    out = {k: v for k, v in jwk.items() if isinstance(k, str) and isinstance(v, str)}
    if any(not out.get(f) for f in _PRIVATE_FIELDS):
        out = _complete_crt(out)
    return out


def _complete_crt(jwk: dict[str, str]) -> dict[str, str]:
    """Recover p, q and the CRT values of a JWK that only carries n, e, d."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    n, e, d = (_b64_to_int(jwk[k]) for k in ("n", "e", "d"))
    try:
        p, q = rsa.rsa_recover_prime_factors(n, e, d)
    except ValueError:
        raise WalletError("The Arweave wallet JWK is not a consistent RSA key") from None
    out = dict(jwk)
    out.update(
        p=_int_to_b64(p),
        q=_int_to_b64(q),
        dp=_int_to_b64(rsa.rsa_crt_dmp1(d, p)),
        dq=_int_to_b64(rsa.rsa_crt_dmq1(d, q)),
        qi=_int_to_b64(rsa.rsa_crt_iqmp(p, q)),
    )
    return out


def load_wallet(source: dict[str, Any] | str | bytes | os.PathLike[str]) -> dict[str, str]:
    """A validated JWK from a dict, a JWK JSON string (or bytes), or the path of a JWK file.

    Returns a new dict (the argument is never modified); a JWK without the
    CRT fields gets them computed.
    """
    if isinstance(source, dict):
        return _validate(source)
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        try:
            return _validate(json.loads(source))
        except json.JSONDecodeError:
            raise WalletError("The Arweave wallet is not valid JSON") from None
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise WalletError(f"Cannot read the Arweave wallet file ({why})") from None
    try:
        return _validate(json.loads(text))
    except json.JSONDecodeError:
        raise WalletError("The Arweave wallet file is not valid JSON") from None


def load_wallet_from_parameter(name: str, *, max_age: int = 300) -> dict[str, str]:
    """The JWK stored in AWS: a Secrets Manager secret when ``name`` starts with ``secret:``,
    else an SSM SecureString parameter (decrypted). Cached by Powertools for ``max_age`` seconds.
    """
    from aws_lambda_powertools.utilities import parameters

    if not name:
        raise WalletError("No Arweave wallet parameter name is configured")
    try:
        if name.startswith(SECRET_PREFIX):
            raw = parameters.get_secret(name[len(SECRET_PREFIX) :], max_age=max_age)
        else:
            raw = parameters.get_parameter(name, decrypt=True, max_age=max_age)
    except parameters.exceptions.GetParameterError as exc:
        raise WalletError(f"Cannot read the Arweave wallet parameter {name!r}") from exc
    if raw is None:
        raise WalletError(f"The Arweave wallet parameter {name!r} is empty")
    if isinstance(raw, dict):
        return load_wallet(raw)
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if not text.lstrip().startswith("{"):
        raise WalletError(f"The Arweave wallet parameter {name!r} does not hold a JWK JSON object")
    return load_wallet(text)


def owner(jwk: dict[str, Any]) -> str:
    """The transaction ``owner`` field: base64url of the modulus ``n``."""
    n = jwk.get("n") if isinstance(jwk, dict) else None
    if not isinstance(n, str) or not n:
        raise WalletError("The Arweave wallet JWK lacks n")
    return b64url_encode(b64url_decode(n))  # normalised (no padding)


def owner_to_address(owner_b64: str) -> str:
    return b64url_encode(hashlib.sha256(b64url_decode(owner_b64)).digest())


def wallet_address(jwk: dict[str, Any]) -> str:
    """The wallet address: base64url(sha256(n bytes)), 43 characters."""
    return owner_to_address(owner(jwk))


_KEY_CACHE: dict[bytes, Any] = {}
_KEY_CACHE_SIZE = 8


def private_key(jwk: dict[str, Any]) -> Any:
    """The ``cryptography`` RSA private key of a JWK.

    Loading checks the key (~0.2 s for RSA-4096), so loaded keys are cached
    per process (a few entries, keyed by a hash of the key).
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    full = _validate(jwk)
    cache_key = hashlib.sha256(f"{full['n']}.{full['d']}".encode()).digest()
    cached = _KEY_CACHE.get(cache_key)
    if cached is not None:
        return cached
    pub = rsa.RSAPublicNumbers(_b64_to_int(full["e"]), _b64_to_int(full["n"]))
    numbers = rsa.RSAPrivateNumbers(
        p=_b64_to_int(full["p"]),
        q=_b64_to_int(full["q"]),
        d=_b64_to_int(full["d"]),
        dmp1=_b64_to_int(full["dp"]),
        dmq1=_b64_to_int(full["dq"]),
        iqmp=_b64_to_int(full["qi"]),
        public_numbers=pub,
    )
    try:
        key = numbers.private_key()
    except ValueError:
        raise WalletError("The Arweave wallet JWK is not a consistent RSA key") from None
    if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
        _KEY_CACHE.pop(next(iter(_KEY_CACHE)))
    _KEY_CACHE[cache_key] = key
    return key


def public_key(owner_b64: str) -> Any:
    """The ``cryptography`` RSA public key of an ``owner`` field."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.RSAPublicNumbers(PUBLIC_EXPONENT, int.from_bytes(b64url_decode(owner_b64), "big")).public_key()
