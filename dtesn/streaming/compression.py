"""Lossless codecs for event payloads, with sizes reported as they really are."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass

import brotli

#: The codecs binary payloads may use (a client may accept a subset: a browser's
#: DecompressionStream knows gzip and deflate, not brotli).
CODECS = ("zlib", "gzip", "brotli")

@dataclass(frozen=True)
class Packed:
    """A payload after compression and transport encoding, with its measured sizes."""

    data: str  # what goes in the event (e.g. base64 text)
    encoding: str  # "<codec>+<transport>", e.g. "brotli+base64"; "identity" when not compressed
    original_size: int  # bytes before compression
    compressed_size: int  # bytes after compression, before the transport encoding


_COMPRESS = {
    "brotli": lambda data, level: brotli.compress(data, quality=level),
    "zlib": lambda data, level: zlib.compress(data, level),
}
_DECOMPRESS = {"brotli": brotli.decompress, "zlib": zlib.decompress}


def pack(payload: bytes, codec: str = "brotli", level: int = 4) -> Packed | None:
    """Compress and base64-encode; None when that would not make the event smaller."""
    compressed = _COMPRESS[codec](payload, level)
    text = base64.b64encode(compressed).decode("ascii")
    if len(text) >= len(payload):
        return None
    return Packed(text, f"{codec}+base64", len(payload), len(compressed))


def unpack(data: str, encoding: str) -> bytes:
    codec, transport = encoding.split("+")
    if transport != "base64":
        raise ValueError(f"unknown transport {transport!r}")
    return _DECOMPRESS[codec](base64.b64decode(data))
