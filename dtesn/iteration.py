"""`dtesn.events`: the events of /stream_chunks in a plain gevent program, as Python dicts.

It runs the very pipeline the HTTP endpoint runs (pump, engine threads, the same event
formatter) and reads each event back from its SSE frame, so that the events and the
`final_digest` are the endpoint's own for the same input and fields, not a second
implementation of them. The engine computes on the runtime's threads: while it does, the
host's own greenlets run (the caller's greenlet waits cooperatively, as for any gevent I/O).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from .client.parser import EventParser
from .engine import ReservoirParams
from .runtime import Runtime
from .settings import Settings
from .storage.source import BytesSource, InputSource
from .streaming.chunk_events import ChunkEvents, ChunkOptions
from .streaming.resume import new_request_id
from .streaming.spec import StreamSpec
from .streaming.stream import event_stream

#: /stream_chunks' defaults and bounds (dtesn/web/streams.py: CHUNK_FIELDS).
CHUNK_SIZE, CHUNK_MIN, CHUNK_MAX = 1024, 128, 8192
HEARTBEAT_S = 25.0


class _IterableSource:
    """An input source over an iterable of byte blocks, of unknown size."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = iter(blocks)
        self._held = b""
        self.size: int | None = None

    def read(self, n: int) -> bytes:
        """Up to `n` bytes of the next block (fewer is fine: the pump reads until it has its
        batch), so no block is copied more than once; b"" only at the end."""
        while not self._held:
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._held = bytes(block)
        piece, self._held = self._held[:n], self._held[n:]
        return piece

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


def _source(data: bytes | BinaryIO | Iterable[bytes]) -> InputSource:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return BytesSource(bytes(data))
    read = getattr(data, "read", None)
    if read is not None:  # a binary file: read as blocks, closed by its owner
        return _IterableSource(iter(lambda: read(1 << 16), b""))
    return _IterableSource(data)


def events(data: bytes | BinaryIO | Iterable[bytes], *, chunk_size: int = CHUNK_SIZE,
           enable_compression: bool = False, timeout_prevention: bool = True,
           processing_mode: str = "streaming", heartbeat_interval: float | None = None,
           runtime: Runtime | None = None, settings: Settings | None = None,
           **params: Any) -> Iterator[dict]:
    """Yield /stream_chunks' events for `data` (bytes, a binary file, or an iterable of bytes):
    metadata, chunk, heartbeat, completion (or error) dicts.

    `params` are the engine's fields (membrane_depth, esn_size, seed, ...): ParameterError
    names a bad one. A `runtime` of the caller's own is shared by its calls (weights built
    once); without one, each call builds a runtime and stops its threads at the end. Call
    `dtesn.engine.warm_up()` once before latency matters: the first use compiles the kernel
    (or loads it from numba's cache), which holds the GIL meanwhile.
    """
    if not CHUNK_MIN <= chunk_size <= CHUNK_MAX:
        raise ValueError(f"chunk_size must be {CHUNK_MIN}..{CHUNK_MAX}, got {chunk_size}")
    reservoir = ReservoirParams(**params)
    own = runtime is None
    if runtime is None:
        runtime = Runtime.create(settings or Settings.load(), datasets=False)
    interval = None if not timeout_prevention else heartbeat_interval or runtime.settings.heartbeat_for(HEARTBEAT_S)
    spec = StreamSpec("stream_chunks", new_request_id(), reservoir, _source(data), chunk_size, interval,
                      estimated_rate=runtime.rates.steps_per_sec(reservoir))
    formatter = ChunkEvents(spec, ChunkOptions(compress=enable_compression, processing_mode=processing_mode))
    stream = event_stream(runtime, spec, formatter)
    try:
        yield from _parsed(stream)
    finally:
        stream.close()
        if own:
            runtime.close()


def _parsed(stream: Iterator[bytes]) -> Iterator[dict]:
    """The JSON data of each event the driver yields, read by the client's parser (one SSE
    parser in the package)."""
    parser = EventParser()
    for frames in stream:
        for event in parser.feed(frames):
            yield orjson.loads(event.data)
