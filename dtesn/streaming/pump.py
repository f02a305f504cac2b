"""The pump, the hub side of a stream: reads input, hands batches to engine threads, and
gives their results to the writer in order, with heartbeats between them.

    producer greenlet --(bounded queue)--> writer (the WSGI generator)
        reads input, queues batches of        yields results, and heartbeats whenever
        chunks on the engine threads          `heartbeat_interval` passes with no write
        (compute.py)

The bounded queue is the backpressure: a slow client stops its own producer (no reading,
no computing) instead of growing the server's memory. Heartbeats come from the writer's
wait timing out, so they fire in the middle of a long chunk too. A chunk is computed in
slices of about SLICE_SECONDS, checking for cancellation between them, so a client that
leaves stops its computation promptly.

The next batch is queued on the engine threads before the hub collects the current one, so
a thread goes on with it at once instead of idling while the hub accounts and writes (a
batch of this stream never starts before the one before it has ended).

The pump owns the stream's greenlets (producer, disconnect watcher) and its Cancellation;
`stop` is the one way it ends early, with the item the writer ends on (or none).

About 300 lines, over the ~250 the kit aims for: the producer, the writer and `stop` are one
state machine over one queue and one set of counters; split, each half would reach into the
other's state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import gevent
from gevent.queue import Empty, Full, Queue

from ..engine import ReservoirParams, Session, Snapshot
from ..runtime.pool import Pending, allocate_lock
from ..storage.source import BodyError, InputSource, InputTooLarge
from .compute import BatchJob, compute_batch
from .disconnect import watch_for_close
from .events import (
    LAST,
    PROBE,
    Batch,
    Cancellation,
    Cancelled,
    ChunkDone,
    Failed,
    Finished,
    Heartbeat,
    Interrupted,
    Item,
    Progress,
)
from .resume import Resume

if TYPE_CHECKING:
    from ..runtime import Runtime

SLICE_SECONDS = 0.02
#: Chunks are handed to an engine thread in batches of about this much compute, at most
#: BATCH_BYTES of input: one hand-off and one write per batch instead of per chunk.
BATCH_SECONDS = 0.05
BATCH_BYTES = 1 << 20
#: A batch may grow past BATCH_BYTES, up to BULK_BATCH_BYTES and BULK_BATCH_CHUNKS (its events
#: are encoded at once), while it still computes in under BULK_BATCH_SECONDS: where the
#: engine is fast, much of a stream's cost is per batch (the hand-offs, reads and writes).
#: stream_large_dataset at esn 256 depth 3 frame 1024 (1 MiB in ~1.5 ms): 1.26x MB/s at
#: 0.80x the worker's CPU per MB with 4 MiB batches (bench.ab); at esn 512 depth 4 frame 64
#: (1 MiB in ~20 ms) batches stay at 1 MiB.
BULK_BATCH_SECONDS = 0.02
BULK_BATCH_BYTES = 4 << 20
BULK_BATCH_CHUNKS = 256
#: The last batch of an input, expected to take less than this, runs on the hub: a thread
#: costs more.
INLINE_SECONDS = 0.002
INLINE_VALUES = 4096  # features per chunk: JSON-encoding more than this costs over a millisecond
DEFAULT_SLICE_STEPS = 1024
QUEUE_DEPTH = 2
#: A stream starts computing once the event loop has nothing else pending (`gevent.idle`),
#: waiting at most this long: when many connections arrive at once, each is answered
#: (headers, metadata) before the streams already open compute, encode and close. 300 streams
#: opened at once on one worker, first byte p99 (bench.burst --against, 30 rounds, with the
#: cheaper request parse and no cycle per stream): median 181 -> 141 ms. A quiet loop is idle
#: at once: a lone stream does not wait.
OPENINGS_FIRST_S = 0.25
YIELD_EVERY = 16  # writes without a hub switch before the writer lets others run

CheckpointSink = Callable[[int, int, str, Snapshot], None]  # (chunk index, input offset, input sha256, state)
#: What the writer ends on when a stream stops with nothing more to say.
_END = object()


def batch_chunks(steps_per_sec: float | None, chunk_size: int, frame_size: int) -> int:
    """How many chunks a batch holds: about BATCH_SECONDS of compute (a chunk shorter than a
    frame counted as a step) within BATCH_BYTES, or within the bulk limits; one while the
    rate is unknown."""
    if steps_per_sec is None:
        return 1
    by_time = steps_per_sec * BATCH_SECONDS / max(1.0, chunk_size / frame_size)
    bulk = min(BULK_BATCH_BYTES, steps_per_sec * frame_size * BULK_BATCH_SECONDS) // chunk_size
    return max(1, int(min(by_time, max(BATCH_BYTES // chunk_size, min(bulk, BULK_BATCH_CHUNKS)))))


def _killed(greenlet: gevent.Greenlet | None) -> gevent.Greenlet | None:
    """Kill `greenlet` (unless it is the caller's own) and forget it.

    A killed greenlet keeps its GreenletExit, whose traceback holds the greenlet's frames,
    which hold the pump: kept, every stream that ended early was a reference cycle of ~60
    objects (tracebacks, frames, its greenlets, the pump and its events) that only a full
    collection freed, and 300 such streams made gen-2 collections of 20-46 ms on the event
    loop. Forgotten, a stream is freed as it ends."""
    if greenlet is None or greenlet is gevent.getcurrent():
        return greenlet
    greenlet.kill(block=True)
    return None


class _Job(NamedTuple):
    result: Pending[Batch | None]
    input_sha256: str


class Pump:
    def __init__(
        self,
        runtime: Runtime,
        params: ReservoirParams,
        source: InputSource,
        chunk_size: int,
        render: Callable[[list[ChunkDone]], bytes],
        *,
        client_socket=None,
        resume: Resume | None = None,
        on_checkpoint: CheckpointSink | None = None,
    ) -> None:
        self.runtime = runtime
        self.params = params
        self.source = source
        self.chunk_size = chunk_size
        self.render = render
        self.client_socket = client_socket
        self.cancellation = Cancellation()
        self._queue: Queue = Queue(QUEUE_DEPTH)
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
        """Results in order, with heartbeats between them; ends after Finished, Failed or
        Interrupted, or when the stream is stopped.

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
                if item is _END:
                    return
                yield item
                last_write = time.monotonic()
                if isinstance(item, LAST):
                    return
        finally:
            self.close()

    def interrupt(self, reason: str) -> None:
        """End the stream now with `Interrupted` (a drain), dropping results not yet written."""
        self.stop(Interrupted(reason, self.progress()))

    def stop(self, final: Item | None = None) -> None:
        """Cancel the computation and end the stream with `final` (None: silently), dropping
        what is queued: the one way a stream ends early."""
        self.cancellation.cancel()
        if self._producer is not None and self._producer is not gevent.getcurrent():
            self._producer.kill(block=False)
        while True:  # make room: nothing queued will be written
            try:
                self._queue.get_nowait()
            except Empty:
                break
        self._queue.put_nowait(_END if final is None else final)

    def ready(self) -> bool:
        """A result is waiting: the writer need not flush what it holds yet."""
        return not self._queue.empty()

    def close(self) -> None:
        """Stop everything this stream started (idempotent)."""
        self.cancellation.cancel()
        self._producer, self._watcher = _killed(self._producer), _killed(self._watcher)
        self.source.close()

    def progress(self) -> Progress:
        """Progress of the results handed to the writer so far."""
        total, done, spent = self.source.size, self._bytes, self._compute_s
        rate = (done - self._first_byte) / spent if spent > 0 else None
        remaining = None if total is None or rate is None else max(0, total - done) / rate
        return Progress(self._chunks, done, total, time.monotonic() - self._started, remaining)

    # -- the producer's side -----------------------------------------------------------

    def _produce(self) -> None:
        """Queue batch k+1 behind batch k, read batch k+2 while they compute, then collect k;
        hand results over in order."""
        pool = self.runtime.pool
        try:
            with gevent.Timeout(OPENINGS_FIRST_S, False):  # see OPENINGS_FIRST_S
                gevent.idle()
            engine_session: Session = pool.submit(self.runtime.session, self.params,
                                                  inline=self.params in self.runtime.weights).get()
            if self._restore is not None:
                engine_session.restore(self._restore)
            index, offset = self._chunks, self._bytes  # where the next batch starts
            running: _Job | None = None
            ended = None  # the running batch's locks, released when it has computed and encoded
            pieces, input_sha256 = self._read_batch()
            while pieces:
                nbytes = sum(map(len, pieces))
                # Only a small batch that ends the input runs on the hub. With the compiled
                # kernel a full batch at frame 1024 (1 MiB, 1.7 ms) counted as small, so a
                # bulk stream computed and encoded batch after batch on the hub: its worst
                # loop lag per 32 MB stream was 8-20 ms, 7-8 ms with the batches on threads
                # (same MB/s).
                inline = self._small(nbytes) and self._input_done()
                if inline and running is not None:  # the hub must not wait on a thread's lock
                    self._collect(running)
                    running = None
                ends = (allocate_lock(), allocate_lock())  # computed, encoded
                for lock in ends:
                    lock.acquire()
                job = BatchJob(engine_session, pieces, self._input_done(), index, offset, self.source.size,
                               self._slice_bytes(), self._on_checkpoint is not None, self._silent_through,
                               self.render, ended, ends, self.cancellation)
                queued = _Job(pool.submit(compute_batch, job, inline=inline), input_sha256)
                index, offset, ended = index + len(pieces), offset + nbytes, ends
                # Read the batch after this one before collecting the one before: the upload
                # arrives while the engine computes, not while it waits for its next batch.
                pieces, input_sha256 = self._read_batch()
                if running is not None:
                    self._collect(running)
                running = queued
            if running is not None:
                self._collect(running)
            duration = time.monotonic() - self._started
            self._queue.put(Finished(self._chunks, self._bytes, self._steps, duration, engine_session.digest(),
                                     self._bytes - self._first_byte))
        except Cancelled:
            pass
        except (InputTooLarge, BodyError) as exc:
            self.cancellation.cancel()  # a batch queued behind stops at its start
            self._queue.put(Failed(str(exc), isinstance(exc, BodyError) and exc.recoverable, self._chunks,
                                   self.progress()))
        except OSError:  # the request body broke off: the client is gone
            self.stop()
        except Exception:  # noqa: BLE001 - reported to the client as an error event, logged by gevent
            self.cancellation.cancel()  # a batch queued behind the failed one stops at its start
            self._queue.put(Failed("internal error while processing", False, self._chunks, self.progress()))
            raise

    def _collect(self, job: _Job) -> None:
        """Wait for a batch, count it, checkpoint it, and queue its events for the writer."""
        batch = job.result.get()
        if batch is None:
            raise Cancelled
        self.runtime.rates.record(self.params, batch.steps, batch.compute_s)
        self._chunks += len(batch.chunks)
        self._bytes += batch.nbytes
        self._steps += batch.steps
        self._compute_s += batch.compute_s
        self.runtime.metrics.processed(batch.nbytes, batch.steps)
        if batch.snapshot is not None and self._on_checkpoint is not None:
            self._on_checkpoint(self._chunks - 1, self._bytes, job.input_sha256, batch.snapshot)
        if batch.events:
            self._queue.put(batch)

    def _read_batch(self) -> tuple[list[memoryview], str]:
        """The next batch's chunks (as many as `batch_chunks` says), and, when checkpointing,
        the sha256 of all input up to their end (a checkpoint's proof of its input; ""
        otherwise).

        The batch is read with one call, one byte past its end (which tells whether the input
        ends with it): servers buffer a body, and many small reads of that buffer cost more
        than the reads themselves.
        """
        want = batch_chunks(self.runtime.rates.steps_per_sec(self.params), self.chunk_size,
                            self.params.frame_size) * self.chunk_size
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

    def _slice_bytes(self) -> int:
        rate = self.runtime.rates.steps_per_sec(self.params)
        slice_steps = DEFAULT_SLICE_STEPS if rate is None else max(16, int(rate * SLICE_SECONDS))
        return slice_steps * self.params.frame_size

    def _small(self, nbytes: int) -> bool:
        """Cheaper to compute and encode on the hub than to hand to an engine thread."""
        rate = self.runtime.rates.steps_per_sec(self.params)
        steps = nbytes / self.params.frame_size
        return rate is not None and steps / rate <= INLINE_SECONDS and steps * self.params.membranes <= INLINE_VALUES
