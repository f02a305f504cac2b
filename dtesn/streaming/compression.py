"""Lossless codecs for event payloads, with sizes reported as they really are."""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import brotli

#: codec -> compress(data, level); also the codecs binary payloads may use (a client may
#: accept a subset: a browser's DecompressionStream knows gzip and deflate, not brotli).
COMPRESS: dict[str, Callable[[bytes, int], bytes]] = {
    "zlib": lambda data, level: zlib.compress(data, level),
    "gzip": lambda data, level: gzip.compress(data, level, mtime=0),
    "brotli": lambda data, level: brotli.compress(data, quality=level),
}
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": zlib.decompress,
    "gzip": gzip.decompress,
    "brotli": brotli.decompress,
}
CODECS = tuple(COMPRESS)


@dataclass(frozen=True)
class Packed:
    """A payload after compression and transport encoding, with its measured sizes."""

    data: str  # what goes in the event (e.g. base64 text)
    encoding: str  # "<codec>+<transport>", e.g. "brotli+base64"; "identity" when not compressed
    original_size: int  # bytes before compression
    compressed_size: int  # bytes after compression, before the transport encoding


def pack(payload: bytes, codec: str = "brotli", level: int = 4) -> Packed | None:
    """Compress and base64-encode; None when that would not make the event smaller."""
    compressed = COMPRESS[codec](payload, level)
    text = base64.b64encode(compressed).decode("ascii")
    if len(text) >= len(payload):
        return None
    return Packed(text, f"{codec}+base64", len(payload), len(compressed))


def unpack(data: str, encoding: str) -> bytes:
    codec, transport = encoding.split("+")
    if transport != "base64":
        raise ValueError(f"unknown transport {transport!r}")
    return DECOMPRESS[codec](base64.b64decode(data))
