"""Development signing identities for Content Credentials: a root CA and an ES256 signing leaf.

C2PA readers refuse a self-signed signing certificate, so a root (a CA) signs a
separate leaf (digitalSignature, the documentSigning / emailProtection extended
key usages, an Organization). The local runtime makes one on first start (kept
in its state dir); tests make a second one standing in for a provider's CA.
Never deployed: in AWS the chain and key come from SSM / Secrets Manager.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


@dataclass(frozen=True)
class Identity:
    chain_pem: bytes  # the leaf, then the root
    key_pem: bytes  # the leaf's private key (PKCS#8)
    root_pem: bytes  # the trust anchor a reader needs

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (("c2pa-chain.pem", self.chain_pem), ("c2pa-root.pem", self.root_pem)):
            (folder / name).write_bytes(data)
        key = folder / "c2pa-key.pem"
        key.write_bytes(self.key_pem)
        key.chmod(0o600)

    @classmethod
    def read(cls, folder: Path) -> Identity | None:
        files = [folder / n for n in ("c2pa-chain.pem", "c2pa-key.pem", "c2pa-root.pem")]
        if not all(f.is_file() for f in files):
            return None
        return cls(*(f.read_bytes() for f in files))


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def make_identity(org: str = "imagemint (local)", *, days: int = 3650) -> Identity:
    """A fresh root CA and a signing leaf under it, for ``org``."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(org, f"{org} root CA")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(org, f"{org} content credentials"))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days - 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    root_pem = root.public_bytes(pem)
    return Identity(
        chain_pem=leaf.public_bytes(pem) + root_pem,
        key_pem=leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        root_pem=root_pem,
    )
