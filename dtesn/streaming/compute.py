"""What runs on an engine thread: a batch of chunks computed, then encoded.

Every function here touches only its arguments (a `BatchJob` and what it holds), never the
pump, the queue or the hub: the thread line of a stream runs along this module's edge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ..engine import ChunkResult, Session
from .events import Batch, Cancellation, Cancelled, ChunkDone, fraction

#: How often a batch waiting for the one before checks for cancellation.
WAIT_CHECK_S = 0.1


class BatchJob(NamedTuple):
    """Consecutive chunks, the first of them chunk `index` at input `offset`."""

    session: Session
    pieces: list[memoryview]
    final: bool  # the input ends with them: the engine flushes its partial frame
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    offset: int
    total_bytes: int | None  # of the whole input, for each chunk's progress
    slice_bytes: int  # the engine is called on about this much input at a time
    snapshot: bool  # checkpointing: the engine state after the last chunk goes with the batch
    silent_through: int  # chunks the client has already (a resume): computed, not encoded
    render: Callable[[list[ChunkDone]], bytes]  # consecutive chunks to their events
    after: tuple | None  # the batch before's (computed, encoded) locks, None for the first
    ends: tuple  # this batch's (computed, encoded) locks, held until each is done
    cancellation: Cancellation


def compute_batch(job: BatchJob) -> Batch | None:
    """Compute, then encode, the job's chunks; None when the stream was cancelled.

    The batch before releases its two locks once it has computed and once it has encoded;
    this batch waits for each in turn. So with two engine threads a batch computes while
    the one before encodes (encoding holds the GIL, the kernel does not), and batches of a
    stream still compute in order and encode in order.

    Cancelled is returned as None, not raised: a pool thread's exception is printed as a
    traceback.
    """
    computed, encoded = job.ends
    try:
        try:
            if job.after is not None:
                _wait_for(job.after[0], job.cancellation)  # at once with one engine thread
            batch = _compute(job)
        finally:
            computed.release()
        if job.after is not None:
            _wait_for(job.after[1], job.cancellation)
        shown = [done for done in batch.chunks if done.index > job.silent_through]
        return replace(batch, events=job.render(shown)) if shown else batch
    except Cancelled:
        return None
    finally:
        encoded.release()


def _wait_for(lock, cancellation: Cancellation) -> None:
    """Acquire a predecessor's lock, giving up once the stream is cancelled: a pool that
    drops its queued tasks at shutdown would otherwise leave this thread waiting for good
    (and the worker, which joins its threads, with it)."""
    while not lock.acquire(timeout=WAIT_CHECK_S):
        cancellation.check()


def _compute(job: BatchJob) -> Batch:
    """The engine is called on groups of about `slice_bytes` of input (a large chunk is cut
    into several, small chunks are fed together), checking for cancellation between calls.
    A chunk's processing time is its share, by bytes, of its calls' measured time."""
    pieces, size = job.pieces, job.slice_bytes
    parts = [(i, piece[o : o + size]) for i, piece in enumerate(pieces) for o in range(0, len(piece), size)]
    per_chunk: list[list[ChunkResult]] = [[] for _ in pieces]
    seconds = [0.0] * len(pieces)
    group: list[tuple[int, memoryview]] = []
    grouped = 0  # bytes in `group`
    for k, part in enumerate(parts):
        group.append(part)
        grouped += len(part[1])
        last = k == len(parts) - 1
        if not last and grouped < size:
            continue
        job.cancellation.check()
        started = time.perf_counter()
        results = job.session.feed_many([b for _, b in group], job.final and last)
        share = (time.perf_counter() - started) / (grouped or 1)
        for (i, b), result in zip(group, results):
            per_chunk[i].append(result)
            seconds[i] += share * len(b)
        group, grouped = [], 0
    chunks, end = [], job.offset
    for i, data in enumerate(pieces):
        start, end = end, end + len(data)
        chunks.append(ChunkDone(job.index + i, start, len(data), _merge(per_chunk[i]), seconds[i],
                                fraction(end, job.total_bytes)))
    return Batch(chunks, b"", job.session.snapshot() if job.snapshot else None,
                 end - job.offset, sum(done.result.steps for done in chunks), sum(seconds))


def _merge(results: list[ChunkResult]) -> ChunkResult:
    """One chunk's result from the results of its consecutive parts."""
    if len(results) == 1:
        return results[0]
    features = np.concatenate([r.features for r in results])
    return ChunkResult(features, results[-1].energy, results[-1].digest, len(features))
