"""The event vocabulary: what the pump hands the writer, and how a stream is cancelled.

Plain records, built on an engine thread (chunks, batches) or on the hub (the rest), read by
the driver (`stream.py`) and by the event formatters. No gevent, no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..engine import ChunkResult, Snapshot


class Cancelled(Exception):
    """The stream was abandoned; its computation stops at the next slice."""


class Cancellation:
    """The one way a stream stops early (client gone, body failed, drain, close).

    Set once, from the hub; the hub side then ends its greenlets, and an engine thread that
    checks it between slices (or while waiting for the batch before) raises Cancelled.
    A real (unpatched) flag: engine threads read it.
    """

    def __init__(self) -> None:
        self._set = False

    def cancel(self) -> None:
        self._set = True

    @property
    def cancelled(self) -> bool:
        return self._set

    def check(self) -> None:
        if self._set:
            raise Cancelled


def fraction(done: int, total: int | None) -> float | None:
    """The share of the input done; None when its size is unknown."""
    if total is None:
        return None
    return 1.0 if total == 0 else min(1.0, done / total)


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


class ChunkDone(NamedTuple):  # thousands a second: a tuple is the cheapest record to build
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    offset: int
    nbytes: int
    result: ChunkResult
    compute_s: float
    fraction: float | None  # of the input done with this chunk


@dataclass(frozen=True)
class Batch:
    """Consecutive chunks computed in one engine task, their events encoded there."""

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
#: Items after which the stream ends.
LAST = (Finished, Failed, Interrupted)
