"""Where engine checkpoints wait for a reconnect: a bounded in-process store.

The interface is two calls, so that a shared store (redis_checkpoints.py, chosen by
DTESN_REDIS_URL) replaces it when reconnects may land on another worker or instance. A
checkpoint that is gone costs time, never correctness: the stream recomputes from the input
up to the resume point.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..engine import Snapshot
from .source import InputSource

_SKIP_PIECE = 1 << 20


class ResumeMismatch(Exception):
    """The reconnect's parameters or input are not those of the stream it names."""


@dataclass(frozen=True)
class Checkpoint:
    """The engine's exact state after chunk `index`, and what the input was up to there."""

    stream_key: str  # endpoint, parameters and chunking: what a resume must match
    index: int
    offset: int  # input bytes consumed through chunk `index`
    input_sha256: str  # of those bytes
    snapshot: Snapshot

    @property
    def nbytes(self) -> int:
        return self.snapshot.state.nbytes + len(self.snapshot.pending) + 256

    def to_bytes(self) -> bytes:
        """A length-prefixed JSON header, then the snapshot: what a shared store keeps."""
        header = json.dumps({"stream_key": self.stream_key, "index": self.index, "offset": self.offset,
                             "input_sha256": self.input_sha256, "dtype": self.snapshot.state.dtype.str}).encode()
        return struct.pack("<I", len(header)) + header + self.snapshot.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Raises ValueError (or KeyError) on bytes that are not a checkpoint's."""
        (length,) = struct.unpack_from("<I", data)
        header = json.loads(data[4 : 4 + length])
        snapshot = Snapshot.from_bytes(data[4 + length :], np.dtype(header.pop("dtype")))
        return cls(**header, snapshot=snapshot)


#: Checkpoints kept per stream. A client resumes behind the newest one by what is in flight
#: (queue, socket buffers: often several batches), rarely far back; so past this count the
#: most crowded for its age goes, and the spacing grows with age.
PER_STREAM = 8


class CheckpointStore(Protocol):
    kind: str

    def save(self, request_id: str, checkpoint: Checkpoint) -> None: ...

    def latest(self, request_id: str, at_most: int) -> Checkpoint | None:
        """The newest checkpoint of the stream at or before chunk `at_most`."""


class MemoryCheckpointStore:
    """Checkpoints expire `ttl_s` after their stream last saved one; the total stays under
    `max_bytes` by dropping the streams that saved least recently."""

    kind = "memory"

    def __init__(self, ttl_s: float, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._streams: OrderedDict[str, tuple[float, list[Checkpoint]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._streams)

    def save(self, request_id: str, checkpoint: Checkpoint) -> None:
        with self._lock:
            _, old = self._streams.pop(request_id, (0.0, []))
            kept = [c for c in old if c.index < checkpoint.index] + [checkpoint]
            while len(kept) > PER_STREAM:
                del kept[_thinnest(kept)]
            self._bytes += sum(c.nbytes for c in kept) - sum(c.nbytes for c in old)
            self._streams[request_id] = (self._clock(), kept)
            self._evict()

    def latest(self, request_id: str, at_most: int) -> Checkpoint | None:
        with self._lock:
            self._evict()
            _, kept = self._streams.get(request_id, (0.0, []))
            return next((c for c in reversed(kept) if c.index <= at_most), None)

    def _evict(self) -> None:
        now = self._clock()
        while self._streams:
            request_id, (saved, _) = next(iter(self._streams.items()))
            if now - saved <= self.ttl_s and self._bytes <= self.max_bytes:
                break
            self._drop(request_id)

    def _drop(self, request_id: str) -> None:
        _, kept = self._streams.pop(request_id, (0.0, []))
        self._bytes -= sum(c.nbytes for c in kept)


def _thinnest(kept: list[Checkpoint]) -> int:
    """The position, never the first or the newest, whose removal leaves the smallest gap
    for its age (gap / distance from the newest): what stays is spaced about geometrically."""
    newest = kept[-1].index

    def crowding(k: int) -> float:
        return (kept[k + 1].index - kept[k - 1].index) / (newest - kept[k].index)

    return min(range(1, len(kept) - 1), key=crowding)


def skip_verified(source: InputSource, checkpoint: Checkpoint) -> hashlib._Hash:
    """Read past the checkpoint's input, checking it is the input the checkpoint saw.

    Runs before the response starts, so a different input is a 409 rather than a broken stream.
    """
    digest, left = hashlib.sha256(), checkpoint.offset
    while left > 0:
        piece = source.read(min(left, _SKIP_PIECE))
        if not piece:
            break
        digest.update(piece)
        left -= len(piece)
    if left > 0 or digest.hexdigest() != checkpoint.input_sha256:
        raise ResumeMismatch(
            f"the input differs from the one this stream processed (its first {checkpoint.offset} bytes "
            "do not match): resend the same body, or start a new stream without Last-Event-ID"
        )
    return digest
