"""Image type, size and frame count from the header (PNG/APNG, JPEG, WebP, GIF), without Pillow.

Used by the fetcher (the magic bytes must agree with the declared type), by
the providers and by the generate step (the size of a delivered image), and
to bound every input image before anything decodes it (:func:`image_info`,
:func:`bounds_problem`: a 9,400 x 9,400 PNG of 86 KB is refused from its 33
header bytes, not after 700 MB of pixels). Frames are counted by walking the
container (PNG chunks to ``acTL``, GIF blocks, WebP ``ANMF`` chunks), never by
decompressing. Only the standard library: importing this module costs nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ALLOWED_MEDIA_TYPES",
    "MAX_FRAMES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "MAX_SIDE",
    "ImageInfo",
    "bounds_problem",
    "image_dimensions",
    "image_info",
    "normalise_media_type",
    "sniff_media_type",
]

# Bounds of one input image, checked from its header before it is decoded.
MAX_PIXELS = 36_000_000  # per frame: 6000 x 6000, a 36 MP camera
MAX_SIDE = 16_384
MAX_FRAMES = 100
MAX_REQUEST_PIXELS = 100_000_000  # every frame of every input image of one request, together

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


# --------------------------------------------------------------------------- bounds before decoding


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int
    frames: int = 1
    largest_frame: int = 0  # pixels of a GIF's largest frame (it may exceed the logical screen)

    @property
    def pixels(self) -> int:
        return max(self.width * self.height, self.largest_frame)


def image_info(data: bytes) -> ImageInfo | None:
    """Type, size and frame count from the container alone; None when the header cannot be read."""
    size = image_dimensions(data)
    kind = sniff_media_type(data)
    if size is None or kind is None:
        return None
    try:
        if kind == "image/png":
            frames = _png_frames(data)
        elif kind == "image/gif":
            frames = _gif_frames(data)
        elif kind == "image/webp":
            frames = _webp_frames(data)
        else:
            frames = (1, 0)
    except (struct.error, IndexError):
        return None
    if frames is None:
        return None
    count, largest = frames
    return ImageInfo(kind, size[0], size[1], max(1, count), largest)


def bounds_problem(info: ImageInfo | None) -> str | None:
    """Why an image may not be decoded here (too many pixels, too wide, too many frames), or None."""
    if info is None:
        return "its size could not be read from its header"
    if info.width > MAX_SIDE or info.height > MAX_SIDE:
        return f"it is {info.width}x{info.height}; at most {MAX_SIDE} pixels a side are accepted"
    if info.pixels > MAX_PIXELS:
        return f"it has {info.pixels:,} pixels ({info.width}x{info.height}); at most {MAX_PIXELS:,} are"
    if info.frames > MAX_FRAMES:
        return f"it has {info.frames}+ frames; at most {MAX_FRAMES} are accepted"
    if info.pixels * info.frames > MAX_REQUEST_PIXELS:
        return f"its {info.frames} frames hold more than {MAX_REQUEST_PIXELS:,} pixels"
    return None


def _png_frames(data: bytes) -> tuple[int, int] | None:
    """APNG's ``acTL`` frame count (1 for a plain PNG), from the chunks before the first ``IDAT``."""
    pos = 8
    n = len(data)
    while pos + 8 <= n:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"acTL":
            (frames,) = struct.unpack(">I", data[pos + 8 : pos + 12])
            return frames, 0
        if kind in (b"IDAT", b"IEND"):
            return 1, 0
        pos += 12 + length
    return 1, 0


def _sub_blocks(data: bytes, pos: int) -> int:
    """Skip GIF data sub-blocks; the position after the terminator."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _gif_frames(data: bytes) -> tuple[int, int] | None:
    """(frames, pixels of the largest frame) by walking the blocks; stops past :data:`MAX_FRAMES`."""
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = largest = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            w, h, local = struct.unpack("<HHB", data[pos + 5 : pos + 10])
            frames += 1
            largest = max(largest, w * h)
            if frames > MAX_FRAMES:
                break
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _sub_blocks(data, pos + 1)  # LZW minimum code size, then the data
        else:
            return None
    return frames, largest


def _webp_frames(data: bytes) -> tuple[int, int] | None:
    """Animated WebP: the number of ``ANMF`` chunks (1 for a still image)."""
    if data[12:16] != b"VP8X" or not data[20] & 0x02:
        return 1, 0
    pos = 12
    frames = 0
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end and frames <= MAX_FRAMES:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"ANMF":
            frames += 1
        pos += 8 + size + (size & 1)
    return frames, 0
