"""Arweave wallets and format-2 transactions (imagemint.adapters.arweave.wallet / .tx), offline.

Known-answer values below were produced by arweave-js 1.15.7 (the copy ArLocal
installs) from the same inputs: data_roots of ``shake_256(b"imagemint")``
prefixes, and a transaction it signed (maximum PSS salt, UTF-8 tags).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagemint.adapters.arweave import tx as arweave_tx
from imagemint.adapters.arweave.tx import (
    MAX_CHUNK_SIZE,
    Transaction,
    chunk_data,
    chunk_payloads,
    compute_data_root,
    create_transaction,
    deep_hash,
    encode_tags,
    generate_transaction_chunks,
    sign,
    verify,
    verify_chunk_payload,
)
from imagemint.adapters.arweave.wallet import (
    WalletError,
    b64url_decode,
    b64url_encode,
    generate_wallet,
    load_wallet,
    load_wallet_from_parameter,
    owner,
    wallet_address,
)
from imagemint.errors import InternalError

K = MAX_CHUNK_SIZE
ROOT = Path(__file__).resolve().parents[2]

# size -> data_root computed by arweave-js 1.15.7 for shake_256(b"imagemint").digest(size)
ARWEAVE_JS_ROOTS = {
    1: "YJm9h7lqVSZGer_7jt9MKsb11d3hwaU30y7dnK20Ge8",
    1000: "vN3u6ml2Dhok-rNIexZcLfs0DOLaGtCJ-Vq2aExfkpY",
    K: "FSsuYQ1ReY2YP1938nWULa7oF5pX-mb4C7C14A7MRcw",  # one chunk + the zero-length leaf
    K + 1: "CFcHPo2fOBZ4fnNMXg-uYHHqyAKxoofAgSVC2MIYJlY",  # rebalanced: two half chunks
    K + 32 * 1024 - 1: "hXJIGHQ8jD_8RTN2fdL8X-1wf2TavHvrReW_0kBcC5I",
    2 * K: "F4iJWGhrkEpMfgwwvV_mpmSpbbPvVo5un7eIl2441TY",
    2 * K + 5: "ehV3v5BfOH_n9dhCoXKYQELC3BjF0tEVGdpzQ7LGFGo",
    3 * K + 100: "OPxOjkuXS85pYe9Fd5oFg5sOCAXiyGywoxjYv8vuXwk",
    8 * K: "u0lJLKFSMQeutPjMG-dI8UeMuxyKIdKen8Aca8RJ7Do",
    8 * K + 12345: "JLPag1OvuJPo0O-6TUX_a6GUlAFUDM2zWRVV4fTgupA",
}

# Signed by arweave-js 1.15.7 (data "héllo wörld", reward 123, empty last_tx).
ARWEAVE_JS_TX = {
    "format": 2,
    "id": "5ACT_nOOH3j7x8VSH9Dhs1fsrWBB8kD47FdzlaYBl3I",
    "last_tx": "",
    "owner": (
        "xkiW0I-nOvdatzjEwo9f5HqEwG5S-w1CdurEPf7i5NcnoXNZgtyLMWyBlM7-FnhXUJwrqf0n90ACrZMd7ZEX7AKQNb9vlxmLbtuqCsZF"
        "WawqzSRo_BEt9bGIUODus6mAXal8qqPCU3g6wIAH9tlmbxHTxkUpzzm64QEeDuEvqq1eT8-cwkT-IWyKwtL5bBhVz5-Cw1HO2vfAwWHZ"
        "ziaxZdkqpcp12WMm5dc4RWQuaIk8liPGOVlkszStxDw63Wfhshk1RtEGVmdrUTYKxtaLghY8LlJsVAf-_w8lxbKnRtF1cUmnWc2KyhOL"
        "JOavdDgXHPF3lb-Ub6JKkHGDUITKYJobzohU1TgqDnPDexdcn7R0fzp8R19zYzE0P4QSaU4NyKFP1iaOxw_PXGVf7PREK5gjx6L-XrID"
        "QjYSULb_797RhkFc6Jj2Q_OtdXQSHi4ewnRv5f6iq39mP5B6b-V1DUkAx5G-tCztaJtxYYH2QzwAE1CbCpHosadPTpJGyCtpiu9zRC5B"
        "VJ4iYvvFyEHMLVgZavsFp6_n6tNMXGrRlAYqNHyusXMkKDnjgzsSpdyjXVFHQfXYhrfc2gFpwQpLYr9EJdEeKMSAni_m04ub9tYpDOAP"
        "QwAh99o2kwl_xDpenrfqKLF8TtRmZaaaD9Cw5A47JNXryiGuPsk_-6DXMVs"
    ),
    "tags": [
        {"name": "Q29udGVudC1UeXBl", "value": "dGV4dC9wbGFpbjsgY2hhcnNldD11dGYtOA"},
        {"name": "VMOtdGxl", "value": "w7xuw69jw7Zkw6kg4pyTIOeUu-WDjw"},
    ],
    "target": "",
    "quantity": "0",
    "data": "aMOpbGxvIHfDtnJsZA",
    "data_size": "13",
    "data_root": "JiwF6KbnaNhTfJFHdsru8BRnVn-xofN0Mv0kOGhYgkE",
    "reward": "123",
    "signature": (
        "Rc7lgd9P9LJTcEJPFUva419TLHjtrj_EY7BshDDzwvPenJT1LrpPf8gNRi7GdK_E_8higCMfGzjuvmVBjdAwkD_yzpHg_7Ansm6T4SAI"
        "sEvmQAIkmvk_1byYleIKM9w6Qdq49-5L-EtYdpOXm_bE4Jvr-nHVylZG142Kh6IT3nKfQPVWdrHyx-zT7RshdEHD3YqjOda7455stkDW"
        "yOmLGLQlirQRfPJCeCoakJ29uk6Xzp5T6ljwSRbwPaFqdledPt32_ik8GdcyxhZWWcWLOSRRg6M3veRO7YcIceuvL_G-icvH-itkstW2"
        "wCwjjA9o48YYMJvRuvMHuseb4LbUkMgGCu9QUy9PSjBUyhQhjRc-l9mlU1kua1UQyv6zbX0uPf9KKMpcaf9PtoJbiI_ceddwlTy7dlWF"
        "792TphH8gGvVQUfAqiJKf3xmOpgPpiOySgSIJXok3LuTYMocL6UVL3ufrg-G2fvxMcxF7gphahg8IDO6-fuoV4nhW1ld-jZ3-L3K8v8X"
        "_E0J6Fv-2C5sqsd5GmA27nPQ7qIX6tZy4K1zg_-1hAnMGA4KAVEG_kTrz-CqmPhPrhVvmQ-9MC4oXWD9RicQgkr0i6ZNhoHW1Wv_D5L2"
        "XIatfxHd56oUgIEaCkxjGM29IHUcZ7YTqbs4-ES7rEn0c2DZnafdWovibws"
    ),
}


def sample(size: int) -> bytes:
    return hashlib.shake_256(b"imagemint").digest(size)


@pytest.fixture(scope="module")
def jwk() -> dict[str, str]:
    return generate_wallet()  # one RSA-4096 key per module (~0.2–2 s)


@pytest.fixture(scope="module")
def key(jwk: dict[str, str]) -> object:
    from imagemint.adapters.arweave.wallet import private_key

    return private_key(jwk)  # validated once (~0.2 s)


@pytest.fixture(scope="module")
def signed(jwk: dict[str, str]) -> Transaction:
    unsigned = create_transaction(
        b"\x89PNG\r\n\x1a\n" + sample(3000),
        owner(jwk),
        tags=[("Content-Type", "image/png"), ("Prompt", "eine Brücke über den Fluss ✓ 画像")],
        reward="1234",
        last_tx=b64url_encode(b"\x07" * 48),
    )
    return sign(unsigned, jwk)


# --------------------------------------------------------------------------- wallet


def test_generated_wallet_is_rsa_4096_and_its_address_is_sha256_of_n(jwk: dict[str, str]) -> None:
    assert set(jwk) == {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"}
    assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"
    n = b64url_decode(jwk["n"])
    assert len(n) == 512
    assert owner(jwk) == jwk["n"]
    address = wallet_address(jwk)
    assert address == base64.urlsafe_b64encode(hashlib.sha256(n).digest()).rstrip(b"=").decode()
    assert len(address) == 43 and "=" not in address


def test_load_wallet_from_dict_json_and_file(jwk: dict[str, str], tmp_path: Path) -> None:
    original = dict(jwk)
    assert load_wallet(jwk) == jwk
    assert jwk == original  # not modified
    assert load_wallet(json.dumps(jwk)) == jwk
    assert load_wallet(json.dumps(jwk).encode()) == jwk
    path = tmp_path / "wallet.json"
    path.write_text(json.dumps(jwk))
    assert load_wallet(path) == jwk
    assert load_wallet(str(path)) == jwk


def test_load_wallet_recovers_missing_crt_fields(jwk: dict[str, str]) -> None:
    minimal = {k: jwk[k] for k in ("kty", "n", "e", "d")}
    assert load_wallet(minimal) == jwk


@pytest.mark.parametrize(
    "bad",
    [
        "not json and not a file",
        "{not json",
        json.dumps({"kty": "EC", "crv": "P-256"}),
        json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}),  # not 4096 bits
        json.dumps({"kty": "RSA", "e": "AQAB"}),
        json.dumps(["a list"]),
    ],
)
def test_load_wallet_rejects_what_is_not_an_arweave_jwk(bad: str) -> None:
    with pytest.raises(WalletError) as info:
        load_wallet(bad)
    assert isinstance(info.value, InternalError)


def test_wallet_errors_never_echo_key_material(jwk: dict[str, str]) -> None:
    broken = {**jwk, "d": jwk["d"][:-4] + "AAAA"}
    broken.pop("p"), broken.pop("q")
    with pytest.raises(WalletError) as info:
        load_wallet(broken)
    assert jwk["d"][:16] not in str(info.value)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    moto = pytest.importorskip("moto")
    from aws_lambda_powertools.utilities.parameters import base

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    base.DEFAULT_PROVIDERS.clear()
    with moto.mock_aws():
        yield
    base.DEFAULT_PROVIDERS.clear()


def test_load_wallet_from_ssm_securestring_and_secret(aws: None, jwk: dict[str, str]) -> None:
    import boto3

    boto3.client("ssm").put_parameter(
        Name="/imagemint/arweave-jwk", Value=json.dumps(jwk), Type="SecureString"
    )
    boto3.client("secretsmanager").create_secret(Name="imagemint/arweave-jwk", SecretString=json.dumps(jwk))
    assert load_wallet_from_parameter("/imagemint/arweave-jwk") == jwk
    assert load_wallet_from_parameter("secret:imagemint/arweave-jwk") == jwk
    with pytest.raises(WalletError, match="parameter"):
        load_wallet_from_parameter("/imagemint/missing")
    with pytest.raises(WalletError, match="parameter"):
        load_wallet_from_parameter("secret:imagemint/missing")


# --------------------------------------------------------------------------- deep hash / signing


def test_deep_hash_tags_blobs_and_lists() -> None:
    blob = b"abc"
    expected_blob = hashlib.sha384(hashlib.sha384(b"blob3").digest() + hashlib.sha384(blob).digest()).digest()
    assert deep_hash(blob) == expected_blob
    acc = hashlib.sha384(b"list1").digest()
    assert deep_hash([blob]) == hashlib.sha384(acc + expected_blob).digest()
    assert deep_hash([]) == hashlib.sha384(b"list0").digest()
    assert deep_hash([[b"a"]]) != deep_hash([b"a"])


def test_signed_tx_id_is_sha256_of_signature(jwk: dict[str, str], signed: Transaction) -> None:
    raw = b64url_decode(signed.signature)
    assert len(raw) == 512
    assert signed.id == b64url_encode(hashlib.sha256(raw).digest())
    assert signed.owner == jwk["n"]
    assert verify(signed)


def test_signature_is_rsa_pss_sha256_with_salt_32(signed: Transaction) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from imagemint.adapters.arweave.wallet import public_key

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public_key(signed.owner).verify(
        b64url_decode(signed.signature), signed.signature_data(), pss, hashes.SHA256()
    )  # raises if not


def test_sign_accepts_a_loaded_key(key: object, signed: Transaction) -> None:
    again = sign(signed, key)
    assert verify(again) and again.id != signed.id  # PSS is randomised


@pytest.mark.parametrize(
    "change",
    [
        {"tags": (("Q29udGVudC1UeXBl", b64url_encode(b"image/jpeg")),)},
        "rename_tag",
        "tamper_tag_value",
        {"data": b"other bytes"},
        "flip_one_data_byte",
        {"data_size": "1"},
        {"data_root": b64url_encode(b"\0" * 32)},
        {"reward": "1"},
        {"quantity": "5"},
        {"last_tx": ""},
        {"id": b64url_encode(b"\1" * 32)},
        {"signature": b64url_encode(b"\2" * 512)},
        {"format": 1},
    ],
)
def test_verify_fails_on_any_tampering(signed: Transaction, change: object) -> None:
    tags = list(signed.tags)
    if change == "rename_tag":
        tags[1] = (b64url_encode(b"Prompts"), tags[1][1])
        change = {"tags": tuple(tags)}
    elif change == "tamper_tag_value":
        tags[1] = (tags[1][0], b64url_encode("eine Brücke über den Fluss ✗ 画像".encode()))
        change = {"tags": tuple(tags)}
    elif change == "flip_one_data_byte":
        data = bytearray(signed.data or b"")
        data[100] ^= 1
        change = {"data": bytes(data)}
    assert isinstance(change, dict)
    assert verify(signed)
    assert not verify(dataclasses.replace(signed, **change))


def test_verify_fails_with_another_owner(signed: Transaction) -> None:
    n = bytearray(b64url_decode(signed.owner))
    n[-1] ^= 2
    assert not verify(dataclasses.replace(signed, owner=b64url_encode(bytes(n))))


def test_arweave_js_signed_tx_verifies_with_utf8_tags() -> None:
    tx = Transaction.from_dict(ARWEAVE_JS_TX)
    assert tx.data == "héllo wörld".encode()
    assert verify(tx)  # signed with arweave-js' maximum salt length
    assert tx.decoded_tags() == [("Content-Type", "text/plain; charset=utf-8"), ("Títle", "ünïcödé ✓ 画像")]
    assert not verify(dataclasses.replace(tx, reward="124"))


def test_utf8_tags_encode_as_arweave_js_does(signed: Transaction) -> None:
    assert encode_tags([("Títle", "ünïcödé ✓ 画像")]) == (
        (ARWEAVE_JS_TX["tags"][1]["name"], ARWEAVE_JS_TX["tags"][1]["value"]),
    )
    assert signed.decoded_tags()[1] == ("Prompt", "eine Brücke über den Fluss ✓ 画像")
    assert signed.tag("content-type") == "image/png"
    assert signed.tag("missing") is None


def test_tag_limits() -> None:
    with pytest.raises(ValueError, match="2048"):
        encode_tags([("Prompt", "ü" * 1100)])  # 2200 bytes of UTF-8
    encode_tags([("P", "x" * 2047)])  # exactly 2048 bytes
    with pytest.raises(ValueError):
        encode_tags([("", "value")])
    with pytest.raises(ValueError):
        encode_tags([("name", 5)])  # type: ignore[list-item]


def test_json_round_trip(signed: Transaction) -> None:
    body = signed.to_dict()
    assert body["data"] == b64url_encode(signed.data or b"")
    assert body["tags"][0] == {"name": b64url_encode(b"Content-Type"), "value": b64url_encode(b"image/png")}
    assert Transaction.from_dict(json.loads(signed.to_json())) == signed
    header = signed.to_dict(include_data=False)
    assert header["data"] == ""
    back = Transaction.from_dict(header)
    assert back.data is None and verify(back)
    with pytest.raises(ValueError):
        Transaction.from_dict({"id": "x"})


# --------------------------------------------------------------------------- data_root and chunks


@pytest.mark.parametrize("size", sorted(ARWEAVE_JS_ROOTS))
def test_data_root_matches_arweave_js(size: int) -> None:
    assert b64url_encode(compute_data_root(sample(size))) == ARWEAVE_JS_ROOTS[size]


def test_data_root_of_one_chunk_is_the_leaf_hash() -> None:
    data = sample(1000)
    leaf = hashlib.sha256(
        hashlib.sha256(hashlib.sha256(data).digest()).digest()
        + hashlib.sha256((1000).to_bytes(32, "big")).digest()
    ).digest()
    assert compute_data_root(data) == leaf
    chunks = generate_transaction_chunks(data)
    assert len(chunks.chunks) == 1 and chunks.proofs[0].offset == 999


def test_empty_data_has_no_root_and_no_chunks() -> None:
    assert compute_data_root(b"") == b""
    assert generate_transaction_chunks(b"").chunks == ()


@pytest.mark.parametrize(
    ("size", "ranges"),
    [
        (K, [(0, K)]),  # the zero-length leaf is not uploaded
        (K + 1, [(0, 131073), (131073, K + 1)]),  # rebalanced
        (2 * K + 5, [(0, K), (K, K + 131075), (K + 131075, 2 * K + 5)]),  # last two rebalanced
        (K + 32 * 1024, [(0, K), (K, K + 32 * 1024)]),  # last chunk exactly 32 KiB: no rebalancing
        (3 * K + 100, [(0, K), (K, 2 * K), (2 * K, 2 * K + 131122), (2 * K + 131122, 3 * K + 100)]),
        (8 * K, [(i * K, (i + 1) * K) for i in range(8)]),
    ],
)
def test_chunk_boundaries(size: int, ranges: list[tuple[int, int]]) -> None:
    chunked = generate_transaction_chunks(sample(size))
    assert [(c.min_byte_range, c.max_byte_range) for c in chunked.chunks] == ranges
    assert all(c.size <= K for c in chunked.chunks)
    assert [p.offset for p in chunked.proofs] == [end - 1 for _, end in ranges]
    if size % K == 0:
        assert chunk_data(sample(size))[-1].size == 0  # counted in the tree


@pytest.mark.parametrize("size", [1000, K + 1, 2 * K + 5, 8 * K + 12345])
def test_chunk_payloads_prove_each_chunk(jwk: dict[str, str], key: object, size: int) -> None:
    data = sample(size)
    tx = sign(create_transaction(data, owner(jwk), tags=[("Content-Type", "image/png")]), key)
    payloads = list(chunk_payloads(tx))
    assert b"".join(b64url_decode(p["chunk"]) for p in payloads) == data
    for p in payloads:
        assert p["data_root"] == tx.data_root and p["data_size"] == str(size)
        assert verify_chunk_payload(p)
    bad_chunk = dict(payloads[0], chunk=b64url_encode(b"x" + b64url_decode(payloads[0]["chunk"])[1:]))
    assert not verify_chunk_payload(bad_chunk)
    if len(payloads) > 1:
        assert not verify_chunk_payload(dict(payloads[0], data_path=payloads[1]["data_path"]))
        assert not verify_chunk_payload(dict(payloads[0], offset=payloads[1]["offset"]))
    assert not verify_chunk_payload(dict(payloads[0], data_root=b64url_encode(b"\0" * 32)))


def test_chunk_payloads_refuse_a_foreign_data_root(signed: Transaction) -> None:
    with pytest.raises(ValueError):
        list(chunk_payloads(signed, generate_transaction_chunks(b"other")))
    with pytest.raises(ValueError):
        list(chunk_payloads(dataclasses.replace(signed, data=None)))


def test_create_transaction_validates_numbers() -> None:
    with pytest.raises(ValueError):
        create_transaction(b"x", "AQAB", reward="-1")
    with pytest.raises(ValueError):
        create_transaction(b"x", "AQAB", last_tx="not base64url!")


def test_modules_import_without_heavy_dependencies() -> None:
    code = (
        "import sys, imagemint_dev.embedded.arweave_store, imagemint.adapters.arweave.gateway_store;"
        "import imagemint.adapters.arweave.tx;"
        "print([m for m in ('cryptography', 'arweave', 'web3', 'openai', 'jose') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PATH": ""},
    )
    assert out.stdout.strip() == "[]"
    assert arweave_tx.__name__ == "imagemint.adapters.arweave.tx"
