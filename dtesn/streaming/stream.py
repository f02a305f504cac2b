"""The driver every SSE endpoint shares: metadata first, then results, heartbeats and the end.

An endpoint family supplies its `EventSet` (how each event looks); the driver and the pump
supply the order, the timing, the accounting and resuming, so every family keeps the same
promises.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import TYPE_CHECKING

from ..engine import Snapshot
from ..storage.checkpoints import Checkpoint, CheckpointStore, ResumeMismatch, skip_verified
from ..storage.fingerprints import Fingerprinting, verified
from . import sse
from .events import Batch, Failed, Finished, Heartbeat, Interrupted, Probe
from .pump import Pump
from .resume import AlreadyComplete, EventId, Resume, chunk_id
from .spec import EventSet, Pacing, StreamSpec, is_large

if TYPE_CHECKING:
    from ..runtime import Runtime

RETRY_MS = 3000
#: How long a client interrupted by a restart waits before resuming (another worker or
#: instance takes it; a restarted one is up within about a second).
RESUME_RETRY_MS = 1000


def resumed(spec: StreamSpec, runtime: Runtime) -> StreamSpec:
    """The spec of a reconnect: the original stream's request id, and where to continue;
    counted in the runtime's metrics by how it went.

    Raises MalformedEventId, AlreadyComplete, or ResumeMismatch when the runtime's newest
    checkpoint, or without one the stream's fingerprint, shows other parameters or other input (the input
    before it is read and hashed here, before the response starts).
    """
    results = runtime.metrics.resumes
    try:
        resumed_spec = _resumed(spec, runtime)
    except AlreadyComplete:
        results.labels("complete").inc()
        raise
    except ResumeMismatch:
        results.labels("mismatch").inc()
        raise
    assert resumed_spec.resume is not None
    results.labels("recompute" if resumed_spec.resume.checkpoint is None else "checkpoint").inc()
    return resumed_spec


def _resumed(spec: StreamSpec, runtime: Runtime) -> StreamSpec:
    last = EventId.parse(spec.resume_from)
    if last.done:
        raise AlreadyComplete
    store = runtime.checkpoints
    checkpoint = None if store is None else store.latest(last.request_id, last.after_chunk)
    if checkpoint is None:
        fingerprint = runtime.fingerprints.get(last.request_id)
        source = spec.source if fingerprint is None else verified(spec.source, spec.stream_key, fingerprint)
        return replace(spec, request_id=last.request_id, source=source, resume=Resume(last.after_chunk))
    if checkpoint.stream_key != spec.stream_key:
        raise ResumeMismatch(
            f"stream {last.request_id} was started with other parameters or on another endpoint; "
            "resume it with the same ones, or start a new stream without Last-Event-ID"
        )
    input_hash = skip_verified(spec.source, checkpoint)
    return replace(spec, request_id=last.request_id, resume=Resume(last.after_chunk, checkpoint, input_hash))


def event_stream(
    runtime: Runtime,
    spec: StreamSpec,
    events: EventSet,
    *,
    client_socket=None,
    pacing: Pacing | None = None,
) -> Generator[bytes, None, None]:
    """The stream's bytes; `wire_bytes` in the completion counts every byte sent before it.
    The runtime's checkpoint store (when checkpoints are on) and fingerprints make it resumable.

    With `pacing`, events are coalesced up to its write buffer (never held while the stream
    waits for its next result), written in pieces of at most that size, and the time each
    piece blocks is reported to it.

    A resumed stream sends no metadata (the client has it): a comment opens it, so the
    headers go out at once, then the events after the resume point.
    """
    source = spec.source
    if spec.resume is None:
        source = Fingerprinting(source, spec.request_id, spec.stream_key, runtime.fingerprints)
    checkpoints = runtime.checkpoints
    pump = Pump(
        runtime, spec.params, source, spec.chunk_size, events.chunks,
        client_socket=client_socket, resume=spec.resume,
        on_checkpoint=None if checkpoints is None else _saver(spec, checkpoints),
    )
    runtime.drain.track(pump)
    metrics = runtime.metrics
    sent, outcome = 0, "client_gone"  # unless the stream reaches its own end
    started = last_event = time.monotonic()
    first_result = True
    try:
        if spec.resume is None:
            last_id = chunk_id(spec.request_id, -1)
            opening = sse.retry(RETRY_MS) + events.metadata()
            if is_large(spec):
                opening += events.heartbeat(pump.progress())
        else:
            last_id = chunk_id(spec.request_id, spec.resume.after)
            opening = sse.retry(RETRY_MS) + sse.comment(f"resuming after {last_id}")
        sent += len(opening)
        yield opening
        held = b""
        interval = (lambda: pacing.heartbeat_interval) if pacing else (lambda: spec.heartbeat_interval)
        if pacing is not None:
            _size_send_buffer(client_socket, pacing.socket_buffer)
        for item in pump.items(interval):
            now = time.monotonic()
            if isinstance(item, Batch):
                out = item.events
                last_id = chunk_id(spec.request_id, item.chunks[-1].index)
                if first_result:
                    metrics.first_event.observe(now - started)
                    first_result = False
            elif isinstance(item, Heartbeat):
                out = events.heartbeat(item.progress)
                metrics.heartbeat_gap.observe(now - last_event)
            elif isinstance(item, Probe):
                out = sse.comment()
            elif isinstance(item, Finished):
                out, outcome = events.completion(item, sent), "completed"
            elif isinstance(item, Interrupted):
                out, outcome = events.error(Failed(item.reason, True, item.progress.chunks, item.progress,
                                                   retry_after_ms=RESUME_RETRY_MS, resume_from=last_id)), "interrupted"
            else:  # Failed: a recoverable one resumes after the last chunk the client has
                if item.recoverable and item.resume_from is None:
                    item = replace(item, retry_after_ms=RETRY_MS, resume_from=last_id)
                out, outcome = events.error(item), "failed"
            last_event = now
            sent += len(out)
            if pacing is None:
                yield out
                continue
            held += out
            if len(held) >= pacing.write_buffer or not pump.ready() or not isinstance(item, (Batch, Heartbeat)):
                reply = yield from _paced_writes(held, pacing)
                held = b""
                if reply:  # after whole events only
                    _size_send_buffer(client_socket, pacing.socket_buffer)
                    sent += len(reply)
                    yield reply
    finally:
        runtime.drain.untrack(pump)
        pump.close()
        metrics.stream_ended(spec.endpoint, outcome)


def _paced_writes(data: bytes, pacing: Pacing) -> Generator[bytes, None, bytes]:
    """`data` in writes of at most the write buffer, each timed and reported to `pacing`;
    returns the events `pacing` wants sent in reply."""
    reply, size = b"", pacing.write_buffer  # read once: written() may change it
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        started = time.monotonic()
        yield piece
        reply += pacing.written(len(piece), time.monotonic() - started)
    return reply


def _size_send_buffer(sock, nbytes: int) -> None:
    """Cap the kernel's send buffer (0: leave it). Best effort: a socket may be gone already."""
    if sock is None or nbytes <= 0:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, nbytes)
    except OSError:
        pass


def _saver(spec: StreamSpec, store: CheckpointStore) -> Callable[[int, int, str, Snapshot], None]:
    def save(index: int, offset: int, input_sha256: str, snapshot: Snapshot) -> None:
        store.save(spec.request_id, Checkpoint(spec.stream_key, index, offset, input_sha256, snapshot))

    return save
