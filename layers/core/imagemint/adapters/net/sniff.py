"""Image type and size from the first bytes (PNG, JPEG, WebP, GIF), without Pillow.

Used by the fetcher (the magic bytes must agree with the declared type), by
the providers and by the generate step (the size of a delivered image).
Only the standard library: importing this module costs nothing.
"""

from __future__ import annotations

import struct

__all__ = ["ALLOWED_MEDIA_TYPES", "image_dimensions", "normalise_media_type", "sniff_media_type"]

ALLOWED_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


def sniff_media_type(data: bytes) -> str | None:
    """The media type the magic bytes of ``data`` announce (png, jpeg, webp, gif), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def normalise_media_type(value: str | None) -> str:
    """A ``Content-Type`` value reduced to its lower-case media type, aliases resolved (``image/jpg``)."""
    main = (value or "").split(";", 1)[0].strip().lower()
    return _MEDIA_ALIASES.get(main, main)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG, JPEG, WebP or GIF header, or None when unreadable."""
    try:
        kind = sniff_media_type(data)
        if kind == "image/png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return (w, h) if w and h else None
        if kind == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return (w, h) if w and h else None
        if kind == "image/webp":
            return _webp_dimensions(data)
        if kind == "image/jpeg":
            return _jpeg_dimensions(data)
    except (struct.error, IndexError):
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 3 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None
