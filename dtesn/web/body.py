"""The request body as the server hands it over, checked: complete, well-formed, not stalled.

gunicorn ends a Content-Length body silently when the client stops short (a killed `curl`, a
half-close), raises its own parse errors for a malformed chunked body (500s, before), and
lets a client that sent headers and then nothing hold a read for good. Every body the kit
reads goes through `CheckedBody`, which turns each of these into one of `source.py`'s
BodyError kinds, and marks the request so its connection is closed after the answer (the
rest of such a body is never read).
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from ..runtime.connections import end_connection
from ..storage.source import BodyError, BodyTimeout, MalformedBody, TruncatedBody

try:
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.errors import NoMoreData, ParseException
    from gunicorn.http.unreader import SocketUnreader

    NO_MORE_DATA: tuple[type[BaseException], ...] = (NoMoreData,)
    SERVER_BODY_ERRORS: tuple[type[BaseException], ...] = (ParseException,)
except ImportError:  # pragma: no cover - another WSGI server
    Body = LengthReader = SocketUnreader = None
    NO_MORE_DATA = SERVER_BODY_ERRORS = ()

CLOSE_KEY = "dtesn.close_connection"


class CheckedBody:
    """A file-like request body whose reads raise BodyError instead of ending short.

    "No byte for `timeout_s`" is the client socket's own timeout while the body is read (each
    receive waits at most that long; a read of many bytes from a slow but live feed does not
    time out), and the connection's `after_s` (the send timeout) once the body has ended.
    """

    def __init__(self, environ: dict, timeout_s: float, after_s: float | None = None) -> None:
        self._environ = environ
        self._raw: BinaryIO = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        self._announced = int(length) if length and length.isdigit() else None
        self._timeout_s = timeout_s
        self._after_s = after_s
        self._received = 0
        self._socket = environ.get("gunicorn.socket")
        self._direct = SocketBody.of(self._raw, self._socket)
        self._set_timeout(timeout_s or None)

    def read(self, n: int = -1) -> bytes:
        try:
            try:
                piece = self._raw.read(n) if self._direct is None else self._direct.read(n)
            except TimeoutError:
                raise BodyTimeout(self._timeout_s) from None
            except NO_MORE_DATA:
                raise MalformedBody("the chunked request body ended without its last (empty) chunk") from None
            except SERVER_BODY_ERRORS as exc:
                raise MalformedBody(f"malformed chunked request body: {exc}") from None
            self._received += len(piece)
            if not piece and n != 0:
                if self._announced is not None and self._received < self._announced:
                    raise TruncatedBody(self._received, self._announced)
                self._set_timeout(self._after_s)  # the whole body is in
            return piece
        except BodyError:
            self._environ[CLOSE_KEY] = True
            raise

    def _set_timeout(self, seconds: float | None) -> None:
        if self._socket is not None:
            self._socket.settimeout(seconds)


class SocketBody:
    """A Content-Length body read from gunicorn's client socket itself, once what gunicorn
    already holds of it is read through gunicorn.

    gunicorn builds every piece it hands over through two BytesIO buffers and their copies:
    0.2-1.1 ms of CPU per MiB (the spread is the allocator's page faults), against 0.13-0.16 ms
    for the socket's own receives and one join (a socketpair, 256 MiB in 1 MiB reads;
    `recv_into` a bytearray was no faster). In the worker, where the GIL is held for it, it
    was 16% of the GIL's time at the large_dataset goal configuration (py-spy --gil).
    gunicorn's count of the body's remaining bytes is kept up to date, so its drain of an
    unread rest after the answer, and the next request on the connection, find the socket
    where they expect it.
    """

    def __init__(self, body: Any, sock: Any) -> None:
        self._body = body
        self._reader = body.reader
        self._socket = sock

    @classmethod
    def of(cls, raw: Any, sock: Any) -> SocketBody | None:
        """The direct reader of gunicorn's body `raw`, or None where it does not apply: another
        server, a chunked body, an unreader that is not this socket's."""
        if Body is None or sock is None or not isinstance(raw, Body) or not isinstance(raw.reader, LengthReader):
            return None
        unreader = raw.reader.unreader
        if not isinstance(unreader, SocketUnreader) or unreader.sock is not sock:
            return None
        return cls(raw, sock)

    def read(self, n: int = -1) -> bytes:
        unread, kept = self._reader.length, _size(self._body.buf)  # gunicorn counts `kept` as read
        n = kept + unread if n < 0 else min(n, kept + unread)
        if n <= 0:
            return b""
        held = kept + min(_size(self._reader.unreader.buf), unread)
        if held:  # read ahead with the headers or by an earlier read: gunicorn's, first
            return self._body.read(min(n, held))
        parts, got = [], 0
        try:
            while got < n and (part := self._socket.recv(n - got)):
                parts.append(part)
                got += len(part)
        finally:
            self._reader.length -= got
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _size(buffer: io.BytesIO) -> int:
    return buffer.seek(0, io.SEEK_END)  # gunicorn writes at the end of its buffers anyway


def after_response(environ: dict) -> None:
    """When the answer is done: shut a connection whose body failed, so it is freed now (gunicorn
    then reads end-of-file and closes, logging nothing) instead of after gunicorn's drain of
    the rest of the body has waited out the body timeout once more. A body refused before it
    was read is left to that drain (shutting it would make a client still sending its body
    see a reset instead of the refusal)."""
    sock = environ.get("gunicorn.socket")
    if sock is not None and environ.get(CLOSE_KEY):
        end_connection(sock)
