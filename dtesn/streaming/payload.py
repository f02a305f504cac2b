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
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from .compression import COMPRESS, DECOMPRESS

ENCODINGS = ("base64", "hex")
DTYPES = {"float32": "<f4", "float16": "<f2"}
_UINT = {2: "<u2", 4: "<u4"}

#: level -> (transforms tried, {codec: codec level}).
LEVELS: dict[int, tuple[tuple[str, ...], dict[str, int]]] = {
    1: (("shuffle",), {"zlib": 1, "brotli": 1, "gzip": 1}),
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
    """One stream's encoder. Levels 2 and 3 try every candidate on every chunk.

    Level 1 ("light and fast") compresses a chunk once, not once per codec: every
    PROBE_EVERY chunks it tries every allowed codec and keeps the smallest's codec for the
    chunks after it (the content of a stream changes slowly; a compression costs as much
    as the rest of a small chunk's encoding). It also backs off from compression that keeps
    not paying: after a chunk no candidate shrinks by MIN_SAVED_BYTES, the next 1, 2, 4 ...
    MAX_BACKOFF chunks are sent raw without trying, and one that pays resets that.

    MIN_SAVED_BYTES, because a compression costs about the same for a small payload as for a
    large one: at the large_dataset goal configuration (16x4 floats, 256 bytes a chunk) zlib
    saved 17 bytes a chunk of English text, and the events' encoding took 24.5 us a chunk
    against 6.5 with the backoff (2.3% more bytes on the wire). Payloads that compress well,
    or are large (the defaults' 15 KB saved 11% of random input), still pay.
    """

    MAX_BACKOFF = 16
    MIN_SAVED_BYTES = 64
    PROBE_EVERY = 32

    def __init__(self, level: int, encoding: str, dtype: str, codecs: tuple[str, ...]) -> None:
        self.level = level
        self.encoding = encoding
        self.dtype = DTYPES[dtype]
        transforms, levels = LEVELS.get(level, ((), {}))
        self._transforms = transforms
        self._candidates = [(t, c, levels[c]) for t in transforms for c in levels if c in codecs]
        self._favourite = self._candidates[:1]  # level 1, between probes
        self._tried = 0
        self._backoff = 0
        self._skip = 0

    def encode_many(self, chunks: list[np.ndarray]) -> list[Payload]:
        """The payloads of consecutive chunks. The transforms run once over each run of
        chunks of one shape: per chunk, NumPy's call overhead would cost more than the work."""
        payloads: list[Payload] = []
        for _, group in groupby(chunks, key=np.shape):
            run = list(group)
            raw = np.asarray(np.stack(run), dtype=self.dtype)
            size = raw[0].nbytes  # 0 for a chunk shorter than a frame
            plain = raw.tobytes()
            transformed = {t: _forward(raw, t) for t in self._transforms} if self._candidates else {}
            for k in range(len(run)):
                payloads.append(self._pack(plain, transformed, k * size, (k + 1) * size))
        return payloads

    def _pack(self, plain: bytes, transformed: dict[str, bytes], start: int, end: int) -> Payload:
        """The payload of bytes [start, end) of `plain` (raw) and `transformed` (per transform)."""
        best_bytes, best_method, best_transform = plain[start:end], "none", "none"
        candidates = self._candidates_now()
        for transform, codec, codec_level in candidates:
            packed = COMPRESS[codec](transformed[transform][start:end], codec_level)
            if len(packed) < len(best_bytes):
                best_bytes, best_method, best_transform = packed, codec, transform
        if self.level == 1 and candidates:
            if best_method != "none" and len(candidates) > 1:
                self._favourite = [c for c in candidates if c[1] == best_method][:1]
            paid = len(best_bytes) <= end - start - self.MIN_SAVED_BYTES
            self._backoff = 0 if paid else min(self.MAX_BACKOFF, max(1, 2 * self._backoff))
            self._skip = self._backoff
        text = base64.b64encode(best_bytes).decode("ascii") if self.encoding == "base64" else best_bytes.hex()
        return Payload(text, best_method, best_transform, end - start, len(best_bytes))

    def _candidates_now(self) -> list[tuple[str, str, int]]:
        if self.level != 1:
            return self._candidates
        if self._skip:
            self._skip -= 1
            return []
        self._tried += 1
        return self._candidates if self._tried % self.PROBE_EVERY == 1 else self._favourite


def decode_features(data: str, *, encoding: str, method: str, transform: str, dtype: str,
                    shape: tuple[int, int]) -> np.ndarray:
    """The reference decoder (what the README's client code does), shape (steps, membranes)."""
    packed = base64.b64decode(data) if encoding == "base64" else bytes.fromhex(data)
    raw = packed if method == "none" else DECOMPRESS[method](packed)
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
    """`transform` applied to each chunk of `raw` (chunks, steps, membranes) on its own, the
    results concatenated (chunk k's are bytes [k * size, (k + 1) * size))."""
    chunks, width = len(raw), raw.dtype.itemsize
    values = raw.view(_UINT[width])
    if transform == "delta+shuffle":
        series = np.ascontiguousarray(values.transpose(0, 2, 1))  # each membrane in time order
        values = series.copy()
        values[:, :, 1:] -= series[:, :, :-1]
    planes = values.reshape(chunks, -1).view(np.uint8).reshape(chunks, -1, width)
    return np.ascontiguousarray(planes.transpose(0, 2, 1)).tobytes()
