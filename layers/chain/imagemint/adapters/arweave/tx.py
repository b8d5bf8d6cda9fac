"""Arweave format-2 data transactions, built, signed and checked here (pure Python + ``cryptography``).

What this module implements, following the Arweave transaction format 2 as
arweave-js produces it:

* **Chunking and ``data_root``**: data is cut into 256 KiB chunks; when the
  bytes left after a full chunk would make a last chunk smaller than 32 KiB,
  the last two chunks are rebalanced (the second-last takes half of the rest,
  rounded up). Each leaf is ``sha256(sha256(chunk_hash) || sha256(note(end)))``,
  each branch ``sha256(sha256(left) || sha256(right) || sha256(note(left_end)))``
  (notes are 32-byte big-endian offsets), pairs are joined level by level and
  an odd node is carried up unchanged. Data that is an exact multiple of
  256 KiB ends with a zero-length chunk that counts in the tree but is never
  uploaded. Empty data has an empty ``data_root``.
* **Chunk proofs** (``data_path``) for ``POST /chunk``: the sibling ids and
  split offsets from the root down to the leaf, then the chunk hash and end
  offset; :func:`validate_path` walks one back to the root.
* **Signature data**: the deep hash (SHA-384, ``blob``/``list`` tagged) of
  ``["2", owner, target, quantity, reward, last_tx, [[name, value]...],
  data_size, data_root]``.
* **Signature**: RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32;
  ``id = base64url(sha256(signature))``.
* **Tags**: name and value are UTF-8 encoded and then base64url encoded on
  the wire (as arweave-js ``addTag`` does); their combined size is at most
  2048 bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from imagemint.adapters.arweave.wallet import b64url_decode, b64url_encode, private_key, public_key

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
NOTE_SIZE = 32
HASH_SIZE = 32
SALT_LENGTH = 32
#: Combined size (bytes) of all tag names and values of one transaction.
MAX_TAGS_BYTES = 2048
TX_ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


# --------------------------------------------------------------------------- hashing helpers


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def _note(value: int) -> bytes:
    """A 32-byte big-endian offset (arweave-js ``intToBuffer``)."""
    return value.to_bytes(NOTE_SIZE, "big")


def deep_hash(item: bytes | Sequence[Any]) -> bytes:
    """Arweave's deep hash (SHA-384) of a blob or a (nested) list of blobs."""
    if isinstance(item, bytes | bytearray | memoryview):
        blob = bytes(item)
        tag = hashlib.sha384(b"blob" + str(len(blob)).encode()).digest()
        return hashlib.sha384(tag + hashlib.sha384(blob).digest()).digest()
    items = list(item)
    acc = hashlib.sha384(b"list" + str(len(items)).encode()).digest()
    for child in items:
        acc = hashlib.sha384(acc + deep_hash(child)).digest()
    return acc


# --------------------------------------------------------------------------- chunking / merkle


@dataclass(frozen=True)
class Chunk:
    data_hash: bytes
    min_byte_range: int
    max_byte_range: int

    @property
    def size(self) -> int:
        return self.max_byte_range - self.min_byte_range


@dataclass(frozen=True)
class Proof:
    offset: int  # the last byte of the chunk (max_byte_range - 1)
    proof: bytes  # data_path


@dataclass(frozen=True)
class ChunkedData:
    data_root: bytes
    chunks: tuple[Chunk, ...]  # uploadable chunks (a trailing zero-length chunk removed)
    proofs: tuple[Proof, ...]


@dataclass(frozen=True)
class _Node:
    id: bytes
    max_byte_range: int
    # leaves
    data_hash: bytes = b""
    # branches
    byte_range: int = 0
    left: _Node | None = None
    right: _Node | None = None


def chunk_data(data: bytes) -> list[Chunk]:
    """Cut ``data`` into chunks by arweave-js' rules (including the last-two-chunks rebalancing)."""
    view = memoryview(data)
    chunks: list[Chunk] = []
    cursor = 0
    rest = len(view)
    while rest >= MAX_CHUNK_SIZE:
        size = MAX_CHUNK_SIZE
        after = rest - MAX_CHUNK_SIZE
        if 0 < after < MIN_CHUNK_SIZE:
            size = -(-rest // 2)  # ceil(rest / 2)
        chunks.append(Chunk(_sha256(view[cursor : cursor + size]), cursor, cursor + size))
        cursor += size
        rest -= size
    chunks.append(Chunk(_sha256(view[cursor:]), cursor, cursor + rest))
    return chunks


def _leaves(chunks: Iterable[Chunk]) -> list[_Node]:
    return [
        _Node(
            id=_sha256(_sha256(c.data_hash), _sha256(_note(c.max_byte_range))),
            max_byte_range=c.max_byte_range,
            data_hash=c.data_hash,
        )
        for c in chunks
    ]


def _branch(left: _Node, right: _Node) -> _Node:
    return _Node(
        id=_sha256(_sha256(left.id), _sha256(right.id), _sha256(_note(left.max_byte_range))),
        max_byte_range=right.max_byte_range,
        byte_range=left.max_byte_range,
        left=left,
        right=right,
    )


def _build_root(nodes: list[_Node]) -> _Node:
    level = nodes
    while len(level) > 1:  # terminates: each pass halves the level (rounding up)
        pairs = range(0, len(level), 2)
        level = [_branch(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in pairs]
    return level[0]


def _proofs(root: _Node) -> list[Proof]:
    out: list[Proof] = []
    stack: list[tuple[_Node, bytes]] = [(root, b"")]
    while stack:  # depth-first, left before right: proofs come out in chunk order
        node, path = stack.pop()
        if node.left is None or node.right is None:
            out.append(Proof(node.max_byte_range - 1, path + node.data_hash + _note(node.max_byte_range)))
            continue
        partial = path + node.left.id + node.right.id + _note(node.byte_range)
        stack.append((node.right, partial))
        stack.append((node.left, partial))
    return out


def generate_transaction_chunks(data: bytes) -> ChunkedData:
    """Chunks, proofs and data_root of ``data`` (empty data: no chunks, empty root)."""
    if not data:
        return ChunkedData(b"", (), ())
    chunks = chunk_data(data)
    root = _build_root(_leaves(chunks))
    proofs = _proofs(root)
    if chunks[-1].size == 0:  # counted in the tree, never uploaded
        chunks, proofs = chunks[:-1], proofs[:-1]
    return ChunkedData(root.id, tuple(chunks), tuple(proofs))


def compute_data_root(data: bytes) -> bytes:
    """The raw 32-byte data_root of ``data`` (``b""`` for empty data)."""
    if not data:
        return b""
    return _build_root(_leaves(chunk_data(data))).id


@dataclass(frozen=True)
class PathResult:
    offset: int  # last byte of the chunk
    left_bound: int
    right_bound: int
    chunk_size: int
    data_hash: bytes


def validate_path(
    data_root: bytes, dest: int, left_bound: int, right_bound: int, path: bytes
) -> PathResult | None:
    """Walk a ``data_path`` from ``data_root`` to the leaf covering byte ``dest``.

    Returns the leaf's bounds and chunk hash, or None when the path does not
    prove a chunk under ``data_root``.
    """
    if right_bound <= 0:
        return None
    if dest >= right_bound:
        dest = right_bound - 1
    dest = max(dest, 0)
    node_id = data_root
    pos = 0
    while True:  # terminates: every step consumes 96 bytes of a finite path
        remaining = len(path) - pos
        if remaining == HASH_SIZE + NOTE_SIZE:
            data_hash = path[pos : pos + HASH_SIZE]
            end = path[pos + HASH_SIZE : pos + HASH_SIZE + NOTE_SIZE]
            if _sha256(_sha256(data_hash), _sha256(end)) != node_id:
                return None
            if int.from_bytes(end, "big") != right_bound:
                return None
            return PathResult(right_bound - 1, left_bound, right_bound, right_bound - left_bound, data_hash)
        if remaining < 2 * HASH_SIZE + NOTE_SIZE:
            return None
        left = path[pos : pos + HASH_SIZE]
        right = path[pos + HASH_SIZE : pos + 2 * HASH_SIZE]
        note = path[pos + 2 * HASH_SIZE : pos + 2 * HASH_SIZE + NOTE_SIZE]
        if _sha256(_sha256(left), _sha256(right), _sha256(note)) != node_id:
            return None
        split = int.from_bytes(note, "big")
        if dest < split:
            node_id, right_bound = left, min(right_bound, split)
        else:
            node_id, left_bound = right, max(left_bound, split)
        pos += 2 * HASH_SIZE + NOTE_SIZE


# --------------------------------------------------------------------------- transactions


def encode_tags(tags: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Tags as ``(name, value)`` strings -> wire form (UTF-8, then base64url), with Arweave's limits."""
    out: list[tuple[str, str]] = []
    total = 0
    for item in tags:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValueError("a tag must be a (name, value) pair")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("tag names and values must be strings")
        if not name:
            raise ValueError("a tag name must not be empty")
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        total += len(raw_name) + len(raw_value)
        out.append((b64url_encode(raw_name), b64url_encode(raw_value)))
    if total > MAX_TAGS_BYTES:
        raise ValueError(f"tags take {total} bytes; Arweave allows {MAX_TAGS_BYTES}")
    return tuple(out)


def _decode_tag_text(b64: str) -> str:
    return b64url_decode(b64).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Transaction:
    """A format-2 transaction. ``tags`` are in wire form (base64url name/value pairs).

    ``data`` is the payload when known (``None`` for a header read from a
    gateway); it is never part of the signature, only through ``data_root``
    and ``data_size``.
    """

    owner: str
    data_size: str = "0"
    data_root: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    target: str = ""
    quantity: str = "0"
    reward: str = "0"
    last_tx: str = ""
    signature: str = ""
    id: str = ""
    format: int = 2
    data: bytes | None = field(default=None, repr=False, compare=False)

    # -- views

    def decoded_tags(self) -> list[tuple[str, str]]:
        return [(_decode_tag_text(n), _decode_tag_text(v)) for n, v in self.tags]

    def tag(self, name: str) -> str | None:
        """The value of the first tag called ``name`` (case-insensitive), decoded."""
        for n, v in self.decoded_tags():
            if n.lower() == name.lower():
                return v
        return None

    def signature_data(self) -> bytes:
        return deep_hash(
            [
                str(self.format).encode(),
                b64url_decode(self.owner),
                b64url_decode(self.target),
                self.quantity.encode(),
                self.reward.encode(),
                b64url_decode(self.last_tx),
                [[b64url_decode(n), b64url_decode(v)] for n, v in self.tags],
                self.data_size.encode(),
                b64url_decode(self.data_root),
            ]
        )

    def chunks(self) -> ChunkedData:
        if self.data is None:
            raise ValueError("the transaction has no data attached")
        return generate_transaction_chunks(self.data)

    def to_dict(self, *, include_data: bool = True) -> dict[str, Any]:
        """The JSON body of ``POST /tx`` (arweave-js field names; ``data`` empty unless included)."""
        return {
            "format": self.format,
            "id": self.id,
            "last_tx": self.last_tx,
            "owner": self.owner,
            "tags": [{"name": n, "value": v} for n, v in self.tags],
            "target": self.target,
            "quantity": self.quantity,
            "data": b64url_encode(self.data) if include_data and self.data else "",
            "data_size": self.data_size,
            "data_tree": [],
            "data_root": self.data_root,
            "reward": self.reward,
            "signature": self.signature,
        }

    def to_json(self, *, include_data: bool = True) -> str:
        return json.dumps(self.to_dict(include_data=include_data), separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Transaction:
        """A transaction from its JSON form (a gateway's ``/tx/<id>`` or our own ``to_dict``)."""
        try:
            tags = tuple((str(t["name"]), str(t["value"])) for t in raw.get("tags") or [])
            data_b64 = raw.get("data") or ""
            return cls(
                owner=str(raw["owner"]),
                data_size=str(raw.get("data_size") or "0"),
                data_root=str(raw.get("data_root") or ""),
                tags=tags,
                target=str(raw.get("target") or ""),
                quantity=str(raw.get("quantity") or "0"),
                reward=str(raw.get("reward") or "0"),
                last_tx=str(raw.get("last_tx") or ""),
                signature=str(raw.get("signature") or ""),
                id=str(raw.get("id") or ""),
                format=int(raw.get("format") or 2),
                data=b64url_decode(data_b64) if data_b64 else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an Arweave transaction: {exc}") from None


def create_transaction(
    data: bytes,
    owner_b64: str,
    *,
    tags: Iterable[tuple[str, str]] = (),
    reward: str = "0",
    last_tx: str = "",
    target: str = "",
    quantity: str = "0",
) -> Transaction:
    """An unsigned format-2 data transaction (data_root and data_size computed from ``data``)."""
    if not str(reward).isdigit() or not str(quantity).isdigit():
        raise ValueError("reward and quantity are decimal strings of winston")
    data = bytes(data)
    b64url_decode(last_tx)  # validates
    b64url_decode(target)
    return Transaction(
        owner=owner_b64,
        data_size=str(len(data)),
        data_root=b64url_encode(compute_data_root(data)),
        tags=encode_tags(tags),
        target=target,
        quantity=str(quantity),
        reward=str(reward),
        last_tx=last_tx,
        data=data,
    )


def sign_with(tx: Transaction, owner_b64: str, signer: Callable[[bytes], bytes]) -> Transaction:
    """``tx`` signed by ``signer`` (message -> raw RSA-PSS signature) of the key with modulus ``owner_b64``.

    Lets another RSA implementation make the signature; check the result with :func:`verify`.
    """
    tx = replace(tx, owner=owner_b64, signature="", id="")
    raw = signer(tx.signature_data())
    return replace(tx, signature=b64url_encode(raw), id=b64url_encode(hashlib.sha256(raw).digest()))


def sign(tx: Transaction, key: Any) -> Transaction:
    """``tx`` signed by ``key`` (a JWK dict or a ``cryptography`` RSA private key).

    The owner is set from the key; signature and id are filled in.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    rsa_key = private_key(key) if isinstance(key, dict) else key
    n = rsa_key.public_key().public_numbers().n
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)
    owner_b64 = b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))
    return sign_with(tx, owner_b64, lambda message: rsa_key.sign(message, pss, hashes.SHA256()))


def verify(tx: Transaction) -> bool:
    """Recompute the signature data and check the signature and the id.

    When the data is attached, its size and data_root must match too. Any
    salt length is accepted (arweave-js signs with the maximum, we with 32).
    """
    try:
        if tx.format != 2 or not tx.signature or not TX_ID_RE.match(tx.id):
            return False
        if tx.data is not None:
            if tx.data_size != str(len(tx.data)):
                return False
            if tx.data_root != b64url_encode(compute_data_root(tx.data)):
                return False
        raw_sig = b64url_decode(tx.signature)
        if b64url_encode(hashlib.sha256(raw_sig).digest()) != tx.id:
            return False
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        try:
            public_key(tx.owner).verify(raw_sig, tx.signature_data(), pss, hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    except (ValueError, TypeError):
        return False


def chunk_payloads(tx: Transaction, chunked: ChunkedData | None = None) -> Iterator[dict[str, str]]:
    """The ``POST /chunk`` bodies of ``tx`` in order (data must be attached)."""
    if tx.data is None:
        raise ValueError("the transaction has no data attached")
    chunked = chunked or tx.chunks()
    if b64url_encode(chunked.data_root) != tx.data_root:
        raise ValueError("the chunks do not belong to this transaction")
    view = memoryview(tx.data)
    for chunk, proof in zip(chunked.chunks, chunked.proofs, strict=True):
        yield {
            "data_root": tx.data_root,
            "data_size": tx.data_size,
            "data_path": b64url_encode(proof.proof),
            "offset": str(proof.offset),
            "chunk": b64url_encode(bytes(view[chunk.min_byte_range : chunk.max_byte_range])),
        }


def verify_chunk_payload(payload: dict[str, str]) -> bool:
    """Check one ``/chunk`` body: its path proves this chunk under its data_root at its offset."""
    try:
        root = b64url_decode(payload["data_root"])
        size = int(payload["data_size"])
        offset = int(payload["offset"])
        chunk = b64url_decode(payload["chunk"])
        result = validate_path(root, offset, 0, size, b64url_decode(payload["data_path"]))
    except (KeyError, ValueError):
        return False
    return (
        result is not None
        and result.offset == offset
        and result.chunk_size == len(chunk)
        and result.data_hash == _sha256(chunk)
    )
