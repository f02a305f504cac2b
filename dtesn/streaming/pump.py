"""The pump: reads input, computes chunks off the hub, and hands results to the writer.

    producer greenlet --(bounded queue)--> writer (the WSGI generator)
        reads input, runs each chunk          yields results, and heartbeats whenever
        in gevent's thread pool               `heartbeat_interval` passes with no write

The bounded queue is the backpressure: a slow client stops its own producer (no reading,
no computing) instead of growing the server's memory. Heartbeats come from the writer's
wait timing out, so they fire in the middle of a long chunk too. A chunk is computed in
slices of about SLICE_SECONDS, checking for cancellation between them, so a client that
leaves stops its computation promptly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import gevent
import numpy as np
from gevent.queue import Empty, Queue

from ..engine import ChunkResult, ReservoirParams, Session, session
from . import rates
from .disconnect import watch_for_close
from .offload import run_blocking
from .source import InputSource, InputTooLarge

SLICE_SECONDS = 0.1
#: A chunk expected to take less than this runs on the hub: a pool thread costs more.
INLINE_SECONDS = 0.002
INLINE_VALUES = 4096  # features per chunk: JSON-encoding more than this costs over a millisecond
DEFAULT_SLICE_STEPS = 1024
QUEUE_DEPTH = 2
YIELD_EVERY = 16  # writes without a hub switch before the writer lets others run


class Cancelled(Exception):
    """The stream was abandoned; the computation stops at the next slice."""


@dataclass(frozen=True)
class Progress:
    chunks: int
    bytes_done: int
    total_bytes: int | None
    elapsed_s: float
    remaining_s: float | None

    @property
    def fraction(self) -> float | None:
        if self.total_bytes is None:
            return None
        return 1.0 if self.total_bytes == 0 else min(1.0, self.bytes_done / self.total_bytes)


@dataclass(frozen=True)
class ChunkDone:
    index: int
    offset: int
    nbytes: int
    result: ChunkResult
    compute_s: float
    progress: Progress


@dataclass(frozen=True)
class Rendered:
    """A chunk's event, encoded where it was computed (off the hub when the chunk is large)."""

    chunk: ChunkDone
    event: bytes


@dataclass(frozen=True)
class Heartbeat:
    progress: Progress


@dataclass(frozen=True)
class Finished:
    chunks: int
    nbytes: int
    steps: int
    duration_s: float
    final_digest: str


@dataclass(frozen=True)
class Failed:
    message: str
    recoverable: bool
    index: int
    progress: Progress


Item = Rendered | Heartbeat | Finished | Failed
_CANCEL = object()


class Pump:
    def __init__(
        self,
        params: ReservoirParams,
        source: InputSource,
        chunk_size: int,
        render: Callable[[ChunkDone], bytes],
        *,
        client_socket=None,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> None:
        self.params = params
        self.source = source
        self.chunk_size = chunk_size
        self.render = render
        self.client_socket = client_socket
        self.on_chunk = on_chunk
        self._queue: Queue = Queue(QUEUE_DEPTH)
        self._cancel = threading.Event()
        self._started = time.monotonic()
        self._chunks = 0
        self._bytes = 0
        self._steps = 0
        self._compute_s = 0.0
        self._producer: gevent.Greenlet | None = None
        self._watcher: gevent.Greenlet | None = None

    # -- the writer's side -------------------------------------------------------------

    def items(self, heartbeat_interval: float | None) -> Iterator[Item]:
        """Results in order, with heartbeats between them; ends after Finished or Failed."""
        self._producer = gevent.spawn(self._produce)
        last_write = time.monotonic()
        unswitched = 0  # consecutive writes whose item was ready: no hub switch happened
        try:
            while True:
                unswitched = unswitched + 1 if not self._queue.empty() else 0
                if unswitched > YIELD_EVERY:  # a bulk stream to a fast reader: let others run
                    gevent.sleep(0)
                    unswitched = 0
                timeout = None if heartbeat_interval is None else max(0.0, last_write + heartbeat_interval - time.monotonic())
                try:
                    item = self._queue.get(timeout=timeout)
                except Empty:
                    item = Heartbeat(self.progress())
                if item is _CANCEL:
                    return
                yield item
                last_write = time.monotonic()
                if isinstance(item, (Finished, Failed)):
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop everything this stream started (idempotent)."""
        self._cancel.set()
        for greenlet in (self._producer, self._watcher):
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=True)

    def progress(self, chunks: int = 0, nbytes: int = 0, compute_s: float = 0.0) -> Progress:
        """Progress so far, plus `chunks`, `nbytes` and `compute_s` not yet counted."""
        total = self.source.size
        done, spent = self._bytes + nbytes, self._compute_s + compute_s
        rate = done / spent if spent > 0 else None
        remaining = None if total is None or rate is None else max(0, total - done) / rate
        return Progress(self._chunks + chunks, done, total, time.monotonic() - self._started, remaining)

    # -- the producer's side -----------------------------------------------------------

    def _produce(self) -> None:
        index = 0
        try:
            engine_session = run_blocking(session, self.params)
            piece = self._read_chunk()
            while piece:
                following = self._read_chunk()
                if not following:
                    self._input_finished()
                job = (engine_session, index, piece, not following)
                if self._small(len(piece)):
                    rendered = self._chunk(*job)
                else:
                    rendered = run_blocking(self._chunk, *job)
                done = rendered.chunk
                rates.record(self.params, done.result.steps, done.compute_s)
                self._chunks += 1
                self._bytes += done.nbytes
                self._steps += done.result.steps
                self._compute_s += done.compute_s
                if self.on_chunk is not None:
                    self.on_chunk(done.nbytes, done.result.steps)
                self._queue.put(rendered)
                index += 1
                piece = following
            self._input_finished()
            duration = time.monotonic() - self._started
            self._queue.put(Finished(self._chunks, self._bytes, self._steps, duration, engine_session.digest()))
        except Cancelled:
            pass
        except InputTooLarge as exc:
            self._queue.put(Failed(str(exc), False, index, self.progress()))
        except OSError:  # the request body broke off: the client is gone
            self._cancel_from_producer()
        except Exception:  # noqa: BLE001 - reported to the client as an error event, logged by gevent
            self._queue.put(Failed("internal error while processing", False, index, self.progress()))
            raise

    def _read_chunk(self) -> bytes:
        parts, wanted = [], self.chunk_size
        while wanted > 0:
            block = self.source.read(wanted)
            if not block:
                break
            parts.append(block)
            wanted -= len(block)
        return b"".join(parts)

    def _input_finished(self) -> None:
        """Input is read to its end: from now on the socket carries nothing but a close."""
        if self._watcher is None and self.client_socket is not None:
            self._watcher = watch_for_close(self.client_socket, self._cancel_from_watcher)

    def _cancel_from_watcher(self) -> None:
        self._cancel.set()
        if self._producer is not None:
            self._producer.kill(block=False)
        self._put_cancel()

    def _cancel_from_producer(self) -> None:
        self._cancel.set()
        self._put_cancel()

    def _put_cancel(self) -> None:
        while True:  # make room: nothing queued matters to a client that is gone
            try:
                self._queue.get_nowait()
            except Empty:
                break
        self._queue.put_nowait(_CANCEL)

    def _small(self, nbytes: int) -> bool:
        """Cheaper to compute and encode on the hub than to hand to a pool thread."""
        rate = rates.steps_per_sec(self.params)
        steps = nbytes / self.params.frame_size
        return rate is not None and steps / rate <= INLINE_SECONDS and steps * self.params.membranes <= INLINE_VALUES

    def _chunk(self, s: Session, index: int, data: bytes, final: bool) -> Rendered:
        """Compute and encode one chunk (in a pool thread unless it is tiny)."""
        started = time.perf_counter()
        result = self._compute(s, data, final)
        compute_s = time.perf_counter() - started
        done = ChunkDone(index, self._bytes, len(data), result, compute_s, self.progress(1, len(data), compute_s))
        return Rendered(done, self.render(done))

    def _compute(self, s: Session, data: bytes, final: bool) -> ChunkResult:
        """Runs in a pool thread: slices of about SLICE_SECONDS, checking for cancellation."""
        rate = rates.steps_per_sec(self.params)
        steps = DEFAULT_SLICE_STEPS if rate is None else max(16, int(rate * SLICE_SECONDS))
        step_bytes = steps * self.params.frame_size
        pieces, last = [], None
        for start in range(0, len(data), step_bytes):
            if self._cancel.is_set():
                raise Cancelled
            last = s.feed(data[start : start + step_bytes], final=final and start + step_bytes >= len(data))
            pieces.append(last.features)
        assert last is not None  # data is never empty here
        if len(pieces) == 1:
            return last
        features = np.concatenate(pieces)
        return ChunkResult(features, last.energy, last.digest, len(features))
