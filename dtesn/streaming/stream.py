"""The driver every SSE endpoint shares: metadata first, then results, heartbeats and the end.

An endpoint family supplies its `EventSet` (how each event looks); the driver and the pump
supply the order, the timing and the accounting, so every family keeps the same promises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from ..engine import ReservoirParams
from . import sse
from .pump import Batch, ChunkDone, Failed, Finished, Heartbeat, Progress, Pump
from .source import InputSource

#: Inputs above this (or of unknown size) get a heartbeat before processing starts.
LARGE_INPUT_BYTES = 50 * 1024
RETRY_MS = 3000


@dataclass(frozen=True)
class StreamSpec:
    request_id: str
    params: ReservoirParams
    source: InputSource
    chunk_size: int
    heartbeat_interval: float | None  # None: heartbeats off


class EventSet(Protocol):
    def metadata(self) -> bytes: ...
    def heartbeat(self, progress: Progress) -> bytes: ...
    def chunk(self, done: ChunkDone) -> bytes: ...  # runs where the chunk was computed
    def completion(self, finished: Finished, wire_bytes: int) -> bytes: ...
    def error(self, failed: Failed) -> bytes: ...


def common_fields(kind: str, request_id: str) -> dict:
    return {"type": kind, "request_id": request_id, "timestamp": round(time.time(), 3)}


def is_large(spec: StreamSpec) -> bool:
    return spec.source.size is None or spec.source.size > LARGE_INPUT_BYTES


def event_stream(
    spec: StreamSpec,
    events: EventSet,
    *,
    client_socket=None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Iterator[bytes]:
    """The stream's bytes; `wire_bytes` in the completion counts every byte sent before it."""
    pump = Pump(spec.params, spec.source, spec.chunk_size, events.chunk, client_socket=client_socket, on_chunk=on_chunk)
    sent = 0
    try:
        opening = sse.retry(RETRY_MS) + events.metadata()
        if is_large(spec):
            opening += events.heartbeat(pump.progress())
        sent += len(opening)
        yield opening
        for item in pump.items(spec.heartbeat_interval):
            if isinstance(item, Batch):
                out = item.events
            elif isinstance(item, Heartbeat):
                out = events.heartbeat(item.progress)
            elif isinstance(item, Finished):
                out = events.completion(item, sent)
            else:
                out = events.error(item)
            sent += len(out)
            yield out
    finally:
        pump.close()
