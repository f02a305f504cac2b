"""The request body as the server hands it over, checked: complete, well-formed, not stalled.

gunicorn ends a Content-Length body silently when the client stops short (a killed `curl`, a
half-close), raises its own parse errors for a malformed chunked body (500s, before), and
lets a client that sent headers and then nothing hold a read for good. Every body the kit
reads goes through `CheckedBody`, which turns each of these into one of `source.py`'s
BodyError kinds, and marks the request so its connection is closed after the answer (the
rest of such a body is never read).
"""

from __future__ import annotations

from typing import BinaryIO

from ..runtime.connections import end_connection
from ..storage.source import BodyError, BodyTimeout, MalformedBody, TruncatedBody

try:
    from gunicorn.http.errors import NoMoreData, ParseException

    NO_MORE_DATA: tuple[type[BaseException], ...] = (NoMoreData,)
    SERVER_BODY_ERRORS: tuple[type[BaseException], ...] = (ParseException,)
except ImportError:  # pragma: no cover - another WSGI server
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
        self._set_timeout(timeout_s or None)

    def read(self, n: int = -1) -> bytes:
        try:
            try:
                piece = self._raw.read(n)
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


def after_response(environ: dict) -> None:
    """When the answer is done: shut a connection whose body failed, so it is freed now (gunicorn
    then reads end-of-file and closes, logging nothing) instead of after gunicorn's drain of
    the rest of the body has waited out the body timeout once more. A body refused before it
    was read is left to that drain (shutting it would make a client still sending its body
    see a reset instead of the refusal)."""
    sock = environ.get("gunicorn.socket")
    if sock is not None and environ.get(CLOSE_KEY):
        end_connection(sock)
