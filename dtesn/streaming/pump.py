"""The pump: reads input, computes chunks off the hub, and hands results to the writer.

    producer greenlet --(bounded queue)--> writer (the WSGI generator)
        reads input, runs batches of          yields results, and heartbeats whenever
        chunks in gevent's thread pool        `heartbeat_interval` passes with no write

The bounded queue is the backpressure: a slow client stops its own producer (no reading,
no computing) instead of growing the server's memory. Heartbeats come from the writer's
wait timing out, so they fire in the middle of a long chunk too. A chunk is computed in
slices of about SLICE_SECONDS, checking for cancellation between them, so a client that
leaves stops its computation promptly.

The next batch is queued in the pool before the hub collects the current one, so the pool
thread goes on with it at once instead of idling while the hub accounts and writes (a
batch of this stream never starts before the one before it has ended).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, NamedTuple

import gevent
import numpy as np
from gevent import monkey
from gevent.queue import Empty, Full, Queue

from ..engine import ChunkResult, ReservoirParams, Session, Snapshot, session, weight_cache
from . import rates
from .disconnect import watch_for_close
from .offload import submit
from .resume import Resume
from .source import BodyError, InputSource, InputTooLarge

SLICE_SECONDS = 0.02
#: Chunks are handed to a pool thread in batches of about this much compute, at most
#: BATCH_BYTES of input: one hand-off and one write per batch instead of per chunk.
BATCH_SECONDS = 0.05
BATCH_BYTES = 1 << 20
#: A chunk expected to take less than this runs on the hub: a pool thread costs more.
INLINE_SECONDS = 0.002
INLINE_VALUES = 4096  # features per chunk: JSON-encoding more than this costs over a millisecond
DEFAULT_SLICE_STEPS = 1024
QUEUE_DEPTH = 2
WAIT_CHECK_S = 0.1  # how often a batch waiting for the one before checks for cancellation
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
        return fraction(self.bytes_done, self.total_bytes)


def fraction(done: int, total: int | None) -> float | None:
    """The share of the input done; None when its size is unknown."""
    if total is None:
        return None
    return 1.0 if total == 0 else min(1.0, done / total)


class ChunkDone(NamedTuple):  # thousands a second: a tuple is the cheapest record to build
    index: int
    offset: int
    nbytes: int
    result: ChunkResult
    compute_s: float
    fraction: float | None  # of the input done with this chunk


@dataclass(frozen=True)
class Batch:
    """Consecutive chunks computed in one pool task, their events encoded there."""

    chunks: list[ChunkDone]
    events: bytes  # of the chunks after the resume point: the others were sent before
    snapshot: Snapshot | None  # the engine after the last chunk, when checkpointing
    nbytes: int
    steps: int
    compute_s: float


@dataclass(frozen=True)
class Heartbeat:
    progress: Progress


@dataclass(frozen=True)
class Finished:
    chunks: int
    nbytes: int  # all the input, including what a resumed stream took from its checkpoint
    steps: int
    duration_s: float
    final_digest: str
    computed_bytes: int  # input this connection computed in duration_s: what throughput is of


@dataclass(frozen=True)
class Failed:
    message: str
    recoverable: bool
    index: int
    progress: Progress
    retry_after_ms: int | None = None  # when recoverable
    resume_from: str | None = None  # when recoverable: the event id to resume after


@dataclass(frozen=True)
class Interrupted:
    """The server stops this stream (a deploy); the client should resume elsewhere."""

    reason: str
    progress: Progress


class Probe:
    """Write anything (an SSE comment): is the client that sent end-of-file still reading?"""


PROBE = Probe()
Item = Batch | Heartbeat | Finished | Failed | Interrupted | Probe
CheckpointSink = Callable[[int, int, str, Snapshot], None]  # (chunk index, input offset, input sha256, state)
_CANCEL = object()
#: Real locks even when threading is patched: pool threads wait on them.
_allocate_lock = monkey.get_original("_thread", "allocate_lock")


class _Job(NamedTuple):
    result: object  # of `submit`: .get() waits for the Batch
    input_sha256: str


class Pump:
    def __init__(
        self,
        params: ReservoirParams,
        source: InputSource,
        chunk_size: int,
        render: Callable[[list[ChunkDone]], bytes],
        *,
        client_socket=None,
        on_computed: Callable[[int, int], None] | None = None,
        resume: Resume | None = None,
        on_checkpoint: CheckpointSink | None = None,
    ) -> None:
        self.params = params
        self.source = source
        self.chunk_size = chunk_size
        self.render = render
        self.client_socket = client_socket
        self.on_computed = on_computed  # (input bytes, steps) after each batch
        self._queue: Queue = Queue(QUEUE_DEPTH)
        self._cancel = threading.Event()
        self._started = time.monotonic()
        checkpoint = resume.checkpoint if resume else None
        self._restore = checkpoint.snapshot if checkpoint else None
        self._silent_through = resume.after if resume else -1  # chunks the client already has
        self._on_checkpoint = on_checkpoint
        # The sha256 of the input so far, for checkpoints only: continued from the checkpoint's
        # own hash of the input before it when resuming.
        self._input_hash = None if on_checkpoint is None else (resume and resume.input_hash) or hashlib.sha256()
        self._chunks = checkpoint.index + 1 if checkpoint else 0
        self._bytes = checkpoint.offset if checkpoint else 0
        self._first_byte = self._bytes  # where this connection's computing starts
        self._steps = checkpoint.snapshot.steps if checkpoint else 0
        self._compute_s = 0.0
        self._buffer = b""  # input read but not yet handed to a batch
        self._eof = False
        self._producer: gevent.Greenlet | None = None
        self._watcher: gevent.Greenlet | None = None

    # -- the writer's side -------------------------------------------------------------

    def items(self, heartbeat_interval: Callable[[], float | None]) -> Iterator[Item]:
        """Results in order, with heartbeats between them; ends after Finished or Failed.

        `heartbeat_interval()` is asked before each wait (None: no heartbeats), so a stream
        can change it as it goes."""
        self._producer = gevent.spawn(self._produce)
        if self.client_socket is not None:
            self._watcher = watch_for_close(self.client_socket, self._probe)
        last_write = time.monotonic()
        unswitched = 0  # consecutive writes whose item was ready: no hub switch happened
        try:
            while True:
                unswitched = unswitched + 1 if not self._queue.empty() else 0
                if unswitched > YIELD_EVERY:  # a bulk stream to a fast reader: let others run
                    gevent.sleep(0)
                    unswitched = 0
                interval = heartbeat_interval()
                timeout = None if interval is None else max(0.0, last_write + interval - time.monotonic())
                try:
                    item = self._queue.get(timeout=timeout)
                except Empty:
                    item = Heartbeat(self.progress())
                if item is _CANCEL:
                    return
                yield item
                last_write = time.monotonic()
                if isinstance(item, (Finished, Failed, Interrupted)):
                    return
        finally:
            self.close()

    def interrupt(self, reason: str) -> None:
        """End the stream now with `Interrupted`, dropping results not yet written."""
        self._cancel.set()
        if self._producer is not None:
            self._producer.kill(block=False)
        self._replace_queued(Interrupted(reason, self.progress()))

    def ready(self) -> bool:
        """A result is waiting: the writer need not flush what it holds yet."""
        return not self._queue.empty()

    def close(self) -> None:
        """Stop everything this stream started (idempotent)."""
        self._cancel.set()
        for greenlet in (self._producer, self._watcher):
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=True)
        self.source.close()

    def progress(self) -> Progress:
        """Progress of the results handed to the writer so far."""
        total, done, spent = self.source.size, self._bytes, self._compute_s
        rate = (done - self._first_byte) / spent if spent > 0 else None
        remaining = None if total is None or rate is None else max(0, total - done) / rate
        return Progress(self._chunks, done, total, time.monotonic() - self._started, remaining)

    # -- the producer's side -----------------------------------------------------------

    def _produce(self) -> None:
        """Read batch k+1 while a pool thread computes batch k, queue it behind k, then collect
        k; hand results over in order."""
        try:
            engine_session = submit(session, self.params, inline=self.params in weight_cache).get()
            if self._restore is not None:
                engine_session.restore(self._restore)
            index, offset = self._chunks, self._bytes  # where the next batch starts
            running: _Job | None = None
            ended = None  # the running batch's locks, released when it has computed and encoded
            pieces, input_sha256 = self._read_batch()
            while pieces:
                nbytes = sum(map(len, pieces))
                inline = self._small(nbytes)
                if inline and running is not None:  # the hub must not wait on a pool thread's lock
                    self._collect(running)
                    running = None
                ends = (_allocate_lock(), _allocate_lock())  # computed, encoded
                for lock in ends:
                    lock.acquire()
                queued = _Job(submit(self._compute_batch, engine_session, pieces, self._input_done(), index, offset,
                                     ended, ends, inline=inline), input_sha256)
                index, offset, ended = index + len(pieces), offset + nbytes, ends
                if running is not None:
                    self._collect(running)
                running = queued
                pieces, input_sha256 = self._read_batch()
            if running is not None:
                self._collect(running)
            duration = time.monotonic() - self._started
            self._queue.put(Finished(self._chunks, self._bytes, self._steps, duration, engine_session.digest(),
                                     self._bytes - self._first_byte))
        except Cancelled:
            pass
        except (InputTooLarge, BodyError) as exc:
            self._cancel.set()  # a batch queued behind stops at its start
            self._queue.put(Failed(str(exc), isinstance(exc, BodyError) and exc.recoverable, self._chunks,
                                   self.progress()))
        except OSError:  # the request body broke off: the client is gone
            self._cancel_from_producer()
        except Exception:  # noqa: BLE001 - reported to the client as an error event, logged by gevent
            self._cancel.set()  # a batch queued behind the failed one stops at its start
            self._queue.put(Failed("internal error while processing", False, self._chunks, self.progress()))
            raise

    def _collect(self, job: _Job) -> None:
        """Wait for a batch, count it, checkpoint it, and queue its events for the writer."""
        batch: Batch | None = job.result.get()
        if batch is None:
            raise Cancelled
        rates.record(self.params, batch.steps, batch.compute_s)
        self._chunks += len(batch.chunks)
        self._bytes += batch.nbytes
        self._steps += batch.steps
        self._compute_s += batch.compute_s
        if self.on_computed is not None:
            self.on_computed(batch.nbytes, batch.steps)
        if batch.snapshot is not None:
            self._on_checkpoint(self._chunks - 1, self._bytes, job.input_sha256, batch.snapshot)
        if batch.events:
            self._queue.put(batch)

    def _read_batch(self) -> tuple[list[memoryview], str]:
        """Chunks worth about BATCH_SECONDS of compute (one when the rate is unknown), and,
        when checkpointing, the sha256 of all input up to their end (a checkpoint's proof of
        its input; "" otherwise).

        The batch is read with one call, one byte past its end (which tells whether the input
        ends with it): servers buffer a body, and many small reads of that buffer cost more
        than the reads themselves.
        """
        rate = rates.steps_per_sec(self.params)
        chunk_steps = max(1.0, self.chunk_size / self.params.frame_size)
        by_time = 1 if rate is None else int(rate * BATCH_SECONDS / chunk_steps)
        want = max(1, min(by_time, BATCH_BYTES // self.chunk_size)) * self.chunk_size
        if not self._eof and len(self._buffer) <= want:
            self._buffer = self._read(want + 1 - len(self._buffer), self._buffer)
        read = memoryview(self._buffer)  # views, not copies: the hub holds the GIL while it copies
        batch, self._buffer = read[:want], bytes(read[want:])
        pieces = [batch[i : i + self.chunk_size] for i in range(0, len(batch), self.chunk_size)]
        if self._input_hash is None:
            return pieces, ""
        self._input_hash.update(batch)
        return pieces, self._input_hash.hexdigest()

    def _input_done(self) -> bool:
        return self._eof and not self._buffer

    def _read(self, n: int, before: bytes = b"") -> bytes:
        """`before`, then up to `n` bytes of input (fewer at its end), joined in one copy."""
        parts = [before]
        while n > 0:
            block = self.source.read(n)
            if not block:
                self._eof = True
                break
            parts.append(block)
            n -= len(block)
        return b"".join(parts)

    def _probe(self) -> None:
        """Have the writer write something now (see disconnect.py); a full queue means writes
        are under way anyway."""
        try:
            self._queue.put_nowait(PROBE)
        except Full:
            pass

    def _cancel_from_producer(self) -> None:
        self._cancel.set()
        self._put_cancel()

    def _put_cancel(self) -> None:
        self._replace_queued(_CANCEL)

    def _replace_queued(self, item: object) -> None:
        while True:  # make room: nothing queued will be written
            try:
                self._queue.get_nowait()
            except Empty:
                break
        self._queue.put_nowait(item)

    def _small(self, nbytes: int) -> bool:
        """Cheaper to compute and encode on the hub than to hand to a pool thread."""
        rate = rates.steps_per_sec(self.params)
        steps = nbytes / self.params.frame_size
        return rate is not None and steps / rate <= INLINE_SECONDS and steps * self.params.membranes <= INLINE_VALUES

    def _compute_batch(self, s: Session, pieces: list[memoryview], final: bool, index: int, offset: int,
                       after: tuple | None, ends: tuple) -> Batch | None:
        """Compute, then encode, consecutive chunks, the first of them chunk `index` at input
        `offset` (in a pool thread unless they are tiny).

        `after` holds the batch before's two locks, released once it has computed and once it
        has encoded; `ends` this batch's. So with two engine threads a batch computes while
        the one before encodes (encoding holds the GIL, the kernel does not), and batches of
        a stream still compute in order and encode in order.

        The engine is called on groups of about SLICE_SECONDS of input (a large chunk is cut
        into several, small chunks are fed together), checking for cancellation between
        calls. A chunk's processing time is its share, by bytes, of its calls' measured time.
        """
        computed, encoded = ends
        try:
            try:
                if after is not None:
                    self._wait_for(after[0])  # at once with one engine thread: the pool runs tasks in order
                batch = self._compute(s, pieces, final, index, offset)
            finally:
                computed.release()
            if after is not None:
                self._wait_for(after[1])
            shown = [done for done in batch.chunks if done.index > self._silent_through]
            return replace(batch, events=self.render(shown) if shown else b"")
        except Cancelled:  # returned, not raised: a pool thread's exception is printed as a traceback
            return None
        finally:
            encoded.release()

    def _wait_for(self, lock) -> None:
        """Acquire a predecessor's lock, giving up once the stream is cancelled: a pool that
        drops its queued tasks at shutdown would otherwise leave this thread waiting for good
        (and the worker, which joins its threads, with it)."""
        while not lock.acquire(timeout=WAIT_CHECK_S):
            if self._cancel.is_set():
                raise Cancelled

    def _compute(self, s: Session, pieces: list[memoryview], final: bool, index: int, offset: int) -> Batch:
        rate = rates.steps_per_sec(self.params)
        slice_steps = DEFAULT_SLICE_STEPS if rate is None else max(16, int(rate * SLICE_SECONDS))
        slice_bytes = slice_steps * self.params.frame_size
        parts = [(i, piece[o : o + slice_bytes]) for i, piece in enumerate(pieces) for o in range(0, len(piece), slice_bytes)]
        per_chunk: list[list[ChunkResult]] = [[] for _ in pieces]
        seconds = [0.0] * len(pieces)
        group: list[tuple[int, memoryview]] = []
        grouped = 0  # bytes in `group`
        for k, part in enumerate(parts):
            group.append(part)
            grouped += len(part[1])
            last = k == len(parts) - 1
            if not last and grouped < slice_bytes:
                continue
            if self._cancel.is_set():
                raise Cancelled
            started = time.perf_counter()
            results = s.feed_many([b for _, b in group], final and last)
            share = (time.perf_counter() - started) / (grouped or 1)
            for (i, b), result in zip(group, results):
                per_chunk[i].append(result)
                seconds[i] += share * len(b)
            group, grouped = [], 0
        total = self.source.size
        chunks, end = [], offset
        for i, data in enumerate(pieces):
            start, end = end, end + len(data)
            chunks.append(ChunkDone(index + i, start, len(data), _merge(per_chunk[i]), seconds[i], fraction(end, total)))
        return Batch(chunks, b"", s.snapshot() if self._on_checkpoint else None,
                     end - offset, sum(done.result.steps for done in chunks), sum(seconds))


def _merge(results: list[ChunkResult]) -> ChunkResult:
    """One chunk's result from the results of its consecutive parts."""
    if len(results) == 1:
        return results[0]
    features = np.concatenate([r.features for r in results])
    return ChunkResult(features, results[-1].energy, results[-1].digest, len(features))
