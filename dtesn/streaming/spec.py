"""What a stream is (`StreamSpec`), and what an endpoint family supplies to the driver:
its `EventSet` (how each event looks) and, for paced streams, its `Pacing`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..engine import CONSTRUCTION, ReservoirParams
from ..storage.source import InputSource
from .events import ChunkDone, Failed, Finished, Progress
from .resume import Resume

#: Inputs above this (or of unknown size) get a heartbeat before processing starts.
LARGE_INPUT_BYTES = 50 * 1024


@dataclass(frozen=True)
class StreamSpec:
    endpoint: str
    request_id: str
    params: ReservoirParams
    source: InputSource
    chunk_size: int
    heartbeat_interval: float | None  # None: heartbeats off
    resume_from: str = ""  # the client's last event id, as sent
    resume: Resume | None = None  # set by `resumed`: continue after resume.after
    estimated_rate: float | None = None  # steps/s measured for these parameters before, if any

    @property
    def stream_key(self) -> str:
        """What a reconnect must repeat to resume this stream: chunk indices and results depend
        on it, and on the weights' construction (a deploy that draws other weights starts over)."""
        return f"{self.endpoint}|{self.chunk_size}|{self.params!r}|w{CONSTRUCTION}"


class Pacing(Protocol):
    """How a stream writes: coalescing, heartbeat timing, and what it learns from its writes."""

    @property
    def write_buffer(self) -> int: ...  # bytes held back to coalesce small events

    @property
    def heartbeat_interval(self) -> float | None: ...

    @property
    def socket_buffer(self) -> int: ...  # the client socket's SO_SNDBUF; 0: leave the kernel's

    def written(self, nbytes: int, blocked_s: float) -> bytes:
        """Account a write that stayed blocked `blocked_s`; events to send in reply (or b"")."""


class EventSet(Protocol):
    def metadata(self) -> bytes: ...
    def heartbeat(self, progress: Progress) -> bytes: ...
    def chunks(self, dones: list[ChunkDone]) -> bytes: ...  # consecutive; runs where they were computed
    def completion(self, finished: Finished, wire_bytes: int) -> bytes: ...
    def error(self, failed: Failed) -> bytes: ...


def is_large(spec: StreamSpec) -> bool:
    return spec.source.size is None or spec.source.size > LARGE_INPUT_BYTES
