"""Binary feature payloads: little-endian floats, a reversible transform, a measured codec choice.

Raw float32 barely compresses (about 0.92 of its size with zlib or brotli), because the low
mantissa bytes look random. Two lossless, documented transforms expose what is regular:

- ``shuffle``: byte planes (all first bytes, then all second bytes, ...): sign and exponent
  bytes, nearly constant, end up side by side.
- ``delta+shuffle``: the values of each membrane, in time order, as unsigned integers of the
  same width, each minus the previous one (wrapping), then byte-shuffled. Membrane means
  change smoothly, so the differences' high bytes are mostly 0x00 or 0xff.

Per chunk, the level decides which candidates are tried; the smallest result wins, and a
chunk for which no candidate beats the raw bytes is sent raw (method ``none``). A client may
restrict the codecs it can decode (a browser's DecompressionStream knows gzip and deflate).
"""

from __future__ import annotations

import base64
import gzip
import zlib
from dataclasses import dataclass
from typing import Callable

import brotli
import numpy as np


ENCODINGS = ("base64", "hex")
DTYPES = {"float32": "<f4", "float16": "<f2"}
_UINT = {2: "<u2", 4: "<u4"}

_COMPRESS: dict[str, Callable[[bytes, int], bytes]] = {
    "zlib": lambda data, level: zlib.compress(data, level),
    "gzip": lambda data, level: gzip.compress(data, level, mtime=0),
    "brotli": lambda data, level: brotli.compress(data, quality=level),
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "zlib": zlib.decompress,
    "gzip": gzip.decompress,
    "brotli": brotli.decompress,
}
#: level -> (transforms tried, {codec: codec level}); level 1 tries only the fastest codec.
LEVELS: dict[int, tuple[tuple[str, ...], dict[str, int]]] = {
    1: (("shuffle",), {"brotli": 1, "zlib": 1, "gzip": 1}),
    2: (("delta+shuffle",), {"zlib": 6, "gzip": 6, "brotli": 5}),
    3: (("shuffle", "delta+shuffle"), {"zlib": 9, "gzip": 9, "brotli": 8}),  # q9 is 10x slower for 0.1%
}


@dataclass(frozen=True)
class Payload:
    data: str  # the encoded bytes, as event text
    method: str  # the codec, or "none"
    transform: str  # "none", "shuffle" or "delta+shuffle"
    original_size: int  # bytes of the raw little-endian features
    compressed_size: int  # bytes after transform and codec (before the text encoding)


class PayloadEncoder:
    """One stream's encoder. Level 1 ("light and fast") backs off from compression that keeps
    not paying: after a chunk no candidate shrinks, the next 1, 2, 4 ... MAX_BACKOFF chunks
    are sent raw without trying, and one that pays resets that. Small float payloads often
    don't compress, and trying costs more than the rest of the chunk's encoding together.
    Levels 2 and 3 try every candidate on every chunk."""

    MAX_BACKOFF = 16

    def __init__(self, level: int, encoding: str, dtype: str, codecs: tuple[str, ...]) -> None:
        self.level = level
        self.encoding = encoding
        self.dtype = DTYPES[dtype]
        transforms, levels = LEVELS.get(level, ((), {}))
        allowed = [c for c in levels if c in codecs]
        self._candidates = [(t, c, levels[c]) for t in transforms for c in (allowed[:1] if level == 1 else allowed)]
        self._backoff = 0
        self._skip = 0

    def encode(self, features: np.ndarray) -> Payload:
        raw = np.ascontiguousarray(features, dtype=self.dtype)
        best_bytes, best_method, best_transform = raw.tobytes(), "none", "none"
        if self._skip:
            self._skip -= 1
        elif self._candidates:
            for transform, codec, codec_level in self._candidates:
                packed = _COMPRESS[codec](_forward(raw, transform), codec_level)
                if len(packed) < len(best_bytes):
                    best_bytes, best_method, best_transform = packed, codec, transform
            if self.level == 1:
                paid = best_method != "none"
                self._backoff = 0 if paid else min(self.MAX_BACKOFF, max(1, 2 * self._backoff))
                self._skip = self._backoff
        text = base64.b64encode(best_bytes).decode("ascii") if self.encoding == "base64" else best_bytes.hex()
        return Payload(text, best_method, best_transform, raw.nbytes, len(best_bytes))


def decode_features(data: str, *, encoding: str, method: str, transform: str, dtype: str,
                    shape: tuple[int, int]) -> np.ndarray:
    """The reference decoder (what the README's client code does), shape (steps, membranes)."""
    packed = base64.b64decode(data) if encoding == "base64" else bytes.fromhex(data)
    raw = _DECOMPRESS[method](packed)
    width = np.dtype(DTYPES[dtype]).itemsize
    if transform == "none":
        return np.frombuffer(raw, DTYPES[dtype]).reshape(shape)
    planes = np.frombuffer(raw, np.uint8).reshape(width, -1).T.copy().view(_UINT[width]).ravel()
    if transform == "shuffle":
        return planes.view(DTYPES[dtype]).reshape(shape)
    steps, membranes = shape
    series = np.cumsum(planes.reshape(membranes, steps), axis=1, dtype=_UINT[width])
    return np.ascontiguousarray(series.T).view(DTYPES[dtype])


def _forward(raw: np.ndarray, transform: str) -> bytes:
    width = raw.dtype.itemsize
    values = raw.view(_UINT[width])
    if transform == "delta+shuffle":
        series = np.ascontiguousarray(values.T)  # (membranes, steps): each membrane in time order
        values = series.copy()
        values[:, 1:] -= series[:, :-1]
    return np.ascontiguousarray(values.reshape(-1).view(np.uint8).reshape(-1, width).T).tobytes()
