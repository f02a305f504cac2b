"""What a stream was, kept long after its checkpoints: so that a resume is checked anyway.

Without a checkpoint (none saved, expired, evicted, or checkpoints off) a reconnect
recomputes from the start, and before this it could not tell a different input or other
parameters from the original: it streamed another input's results under the old id. A
fingerprint is the stream's key (endpoint, parameters, chunking) and the sha256 of its first
HEAD_BYTES of input: about 150 bytes a stream, so a worker keeps many (MAX_STREAMS) for a
day (TTL_S), oldest first out. With DTESN_REDIS_URL they live in Redis (redis_fingerprints.py),
so a resume is checked on whichever instance it lands.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from .checkpoints import ResumeMismatch
from .source import InputSource

HEAD_BYTES = 64 * 1024
MAX_STREAMS = 100_000
TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Fingerprint:
    stream_key: str
    head_bytes: int  # how much of the input the hash covers (less when the input is shorter)
    head_sha256: str

    def to_json(self) -> dict:
        return asdict(self)


class FingerprintStore(Protocol):
    kind: str

    def save(self, request_id: str, fingerprint: Fingerprint) -> None: ...

    def get(self, request_id: str) -> Fingerprint | None: ...


class MemoryFingerprintStore:
    kind = "memory"

    def __init__(self, max_streams: int = MAX_STREAMS, ttl_s: float = TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Fingerprint]] = OrderedDict()
        self._lock = threading.Lock()

    def save(self, request_id: str, fingerprint: Fingerprint) -> None:
        with self._lock:
            self._entries.pop(request_id, None)
            self._entries[request_id] = (self._clock(), fingerprint)
            while len(self._entries) > self.max_streams:
                self._entries.popitem(last=False)

    def get(self, request_id: str) -> Fingerprint | None:
        with self._lock:
            saved, fingerprint = self._entries.get(request_id, (0.0, None))
            if fingerprint is not None and self._clock() - saved > self.ttl_s:
                del self._entries[request_id]
                return None
            return fingerprint


class Fingerprinting:
    """An input source that records its stream's fingerprint as its head is read."""

    def __init__(self, source: InputSource, request_id: str, stream_key: str, store: FingerprintStore) -> None:
        self._source = source
        self.size = source.size
        self._request_id = request_id
        self._stream_key = stream_key
        self._store = store
        self._hash = hashlib.sha256()
        self._seen = 0
        self._done = False

    def read(self, n: int) -> bytes:
        piece = self._source.read(n)
        if not self._done:
            head = piece[: HEAD_BYTES - self._seen]
            self._hash.update(head)
            self._seen += len(head)
            if self._seen >= HEAD_BYTES or not piece:
                self._done = True
                self._store.save(self._request_id, Fingerprint(self._stream_key, self._seen, self._hash.hexdigest()))
        return piece

    def close(self) -> None:
        self._source.close()


class Replayed:
    """`head` (already read from `source` to check it), then the rest of `source`."""

    def __init__(self, head: bytes, source: InputSource) -> None:
        self._head = memoryview(head)
        self._source = source
        self.size = source.size

    def read(self, n: int) -> bytes:
        if self._head:
            piece, self._head = bytes(self._head[:n]), self._head[n:]
            return piece
        return self._source.read(n)

    def close(self) -> None:
        self._source.close()


def verified(source: InputSource, stream_key: str, fingerprint: Fingerprint) -> InputSource:
    """The resent input, checked against the stream's fingerprint before the response starts;
    raises ResumeMismatch naming what differs."""
    if fingerprint.stream_key != stream_key:
        raise ResumeMismatch(
            "this stream was started with other parameters or on another endpoint; resume it with the "
            "same ones, or start a new stream without Last-Event-ID"
        )
    parts, left = [], fingerprint.head_bytes + 1  # one byte more: an input that was shorter must still end there
    while left > 0 and (piece := source.read(left)):
        parts.append(piece)
        left -= len(piece)
    head = b"".join(parts)
    covered = head[: fingerprint.head_bytes]
    ends_early = len(head) < fingerprint.head_bytes
    ended_then = fingerprint.head_bytes < HEAD_BYTES  # the original input ended inside the head
    if ends_early or hashlib.sha256(covered).hexdigest() != fingerprint.head_sha256 or (ended_then and len(head) > len(covered)):
        raise ResumeMismatch(
            "the input differs from the one this stream processed: resend the same body, or start a new "
            "stream without Last-Event-ID"
        )
    return Replayed(head, source)
