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
import secrets
from dataclasses import dataclass

from ..storage.checkpoints import Checkpoint

_EVENT_ID = re.compile(r"([A-Za-z0-9_-]{1,32}):(start|done|0|[1-9][0-9]{0,11})")
START, DONE = "start", "done"


def new_request_id() -> str:
    """A stream's (and a request's) id: random, URL-safe, 16 characters (at most 32 are
    accepted from clients)."""
    return secrets.token_urlsafe(12)


class MalformedEventId(ValueError):
    pass


class AlreadyComplete(Exception):
    """The client has the completion event: nothing is left to send (HTTP 204 stops EventSource)."""


@dataclass(frozen=True)
class EventId:
    request_id: str
    mark: str  # START, DONE or a chunk index

    @classmethod
    def parse(cls, text: str) -> EventId:
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
class Resume:
    """Where a reconnect continues: after chunk `after`, from `checkpoint` when there is one
    (then `input_hash` has hashed the input up to it, and goes on from there)."""

    after: int
    checkpoint: Checkpoint | None = None
    input_hash: hashlib._Hash | None = None
