"""Where a request's input bytes come from, read incrementally.

A raw body is never held whole: readers pull a chunk at a time, so memory does not grow
with the input's size.
"""

from __future__ import annotations

from typing import Protocol


class InputTooLarge(Exception):
    """The input grew past its byte limit while being read (a body without Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"input exceeds the limit of {limit} bytes")
        self.limit = limit


class BodyError(Exception):
    """The request body is not the one its headers announced, or stopped arriving: nothing
    computed from it is kept as a complete result, and nothing of it is stored."""

    recoverable = False


class TruncatedBody(BodyError):
    def __init__(self, received: int, announced: int) -> None:
        super().__init__(f"the request body ended after {received} of its {announced} bytes (Content-Length)")


class MalformedBody(BodyError):
    """A chunked body that breaks the chunk syntax or ends without its last (empty) chunk."""


class BodyTimeout(BodyError):
    recoverable = True  # what was computed before is checkpointed: the client can resume

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body sent no byte for {seconds:g} s")


class InputSource(Protocol):
    #: Total bytes when known up front (Content-Length, a string); None for a chunked body.
    size: int | None

    def read(self, n: int) -> bytes:
        """Up to n bytes; b"" at the end of input."""

    def close(self) -> None:
        """Release what the source holds (a dataset's open file); the stream has ended."""


class BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.size: int | None = len(data)

    def read(self, n: int) -> bytes:
        piece = self._data[self._pos : self._pos + n]
        self._pos += len(piece)
        return bytes(piece)

    def close(self) -> None:
        pass


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class StreamSource:
    """A file-like body (a WSGI input stream), read with a hard byte limit."""

    def __init__(self, stream: Readable, size: int | None, limit: int) -> None:
        self._stream = stream
        self.size = size
        self._limit = limit
        self._consumed = 0

    def read(self, n: int) -> bytes:
        want = n if self.size is None else min(n, self.size - self._consumed)
        if want <= 0:
            return b""
        piece = self._stream.read(want)
        self._consumed += len(piece)
        if self._consumed > self._limit:
            raise InputTooLarge(self._limit)
        return piece

    def close(self) -> None:
        pass  # the server owns its input stream


def read_all(source: InputSource, limit: int, piece: int = 1 << 16) -> bytes:
    """The whole input, refusing more than `limit` bytes."""
    parts, total = [], 0
    while block := source.read(piece):
        total += len(block)
        if total > limit:
            raise InputTooLarge(limit)
        parts.append(block)
    return b"".join(parts)
