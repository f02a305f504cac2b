"""Event ids and what resuming after one means.

Every resumable event carries `id: <request_id>:<mark>`: `start` on the metadata, the chunk
index on a chunk, `done` on the completion. A client reconnecting with one of them (the
`Last-Event-ID` header a browser sends by itself, or `last_event_id`) continues right after
that event. A checkpoint, when the store still has one, saves recomputing the input before
it; its input hash also proves that a resent body is the same input.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..engine import Snapshot
from .source import InputSource

_EVENT_ID = re.compile(r"([A-Za-z0-9_-]{1,32}):(start|done|0|[1-9][0-9]{0,11})")
START, DONE = "start", "done"
_SKIP_PIECE = 1 << 20


class MalformedEventId(ValueError):
    pass


class AlreadyComplete(Exception):
    """The client has the completion event: nothing is left to send (HTTP 204 stops EventSource)."""


class ResumeMismatch(Exception):
    """The reconnect's parameters or input are not those of the stream it names."""


@dataclass(frozen=True)
class EventId:
    request_id: str
    mark: str  # START, DONE or a chunk index

    @classmethod
    def parse(cls, text: str) -> "EventId":
        match = _EVENT_ID.fullmatch(text.strip())
        if match is None:
            raise MalformedEventId(
                f"malformed event id {text[:140]!r}: expected <request_id>:<chunk index>, <request_id>:start "
                "or <request_id>:done, as sent in the stream's id: lines"
            )
        return cls(match.group(1), match.group(2))

    @property
    def done(self) -> bool:
        return self.mark == DONE

    @property
    def after_chunk(self) -> int:
        """The last chunk the client has: -1 when it has only the metadata."""
        return -1 if self.mark == START else int(self.mark)

    def __str__(self) -> str:
        return f"{self.request_id}:{self.mark}"


def chunk_id(request_id: str, index: int) -> str:
    """The id of chunk `index`; -1 stands for the metadata (`start`)."""
    return f"{request_id}:{index}" if index >= 0 else f"{request_id}:{START}"


def done_id(request_id: str) -> str:
    return f"{request_id}:{DONE}"


@dataclass(frozen=True)
class Checkpoint:
    """The engine's exact state after chunk `index`, and what the input was up to there."""

    stream_key: str  # endpoint, parameters and chunking: what a resume must match
    index: int
    offset: int  # input bytes consumed through chunk `index`
    input_sha256: str  # of those bytes
    snapshot: Snapshot

    @property
    def nbytes(self) -> int:
        return self.snapshot.state.nbytes + len(self.snapshot.pending) + 256


@dataclass(frozen=True)
class Resume:
    """Where a reconnect continues: after chunk `after`, from `checkpoint` when there is one
    (then `input_hash` has hashed the input up to it, and goes on from there)."""

    after: int
    checkpoint: Checkpoint | None = None
    input_hash: "hashlib._Hash | None" = None


def skip_verified(source: InputSource, checkpoint: Checkpoint) -> "hashlib._Hash":
    """Read past the checkpoint's input, checking it is the input the checkpoint saw.

    Runs before the response starts, so a different input is a 409 rather than a broken stream.
    """
    digest, left = hashlib.sha256(), checkpoint.offset
    while left > 0:
        piece = source.read(min(left, _SKIP_PIECE))
        if not piece:
            break
        digest.update(piece)
        left -= len(piece)
    if left > 0 or digest.hexdigest() != checkpoint.input_sha256:
        raise ResumeMismatch(
            f"the input differs from the one this stream processed (its first {checkpoint.offset} bytes "
            "do not match): resend the same body, or start a new stream without Last-Event-ID"
        )
    return digest
