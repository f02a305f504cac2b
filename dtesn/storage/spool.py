"""Half-duplex clients: a raw body is read as fast as it arrives, whatever the output does.

Python's http.client, requests with identity encoding and Java's HttpURLConnection send the
whole body before reading a byte of the answer. Before, the pump read the body only as fast
as it computed, and it computed only as fast as the client read: once the output filled the
socket buffers both sides waited for good (stream_chunks at 8 MB of body, stream_large_dataset
at 14 MB). A filler greenlet now copies the body into an unnamed temporary file as it arrives
(nothing of it is left on disk, even if the worker dies), and the pump reads from there:
memory stays constant, the file is bounded by the body limit, and the body's own errors
(truncated, malformed, stalled, too large) reach the pump when it reads to where they happened.

While the pump keeps up, the body does not go through the file: pieces wait in memory, up to
MEMORY_BYTES, and only what arrives beyond that (the pump is behind, or the client will not
read before it has sent everything) is written to the file, which is made then.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from typing import IO

import gevent
from gevent.event import Event

from .source import InputSource

#: The filler reads what the pump last asked for, within these bounds: a body read blocks until
#: it has that much, so large reads keep a bulk upload fast (stream_chunks at frame 1024:
#: 64 KB pieces 103-132 MB/s, 1 MB pieces 163 MB/s) and small ones keep a live feed live.
PIECE_MIN = 1 << 12
PIECE_MAX = 1 << 20
#: The filler's pause after each piece. A socket with data waiting never blocks, so a body
#: arriving as fast as it is spooled kept the event loop to itself until its end: a 32 MB
#: loopback upload delayed the first result by 63 ms and every timer and socket of the worker
#: by up to 90 ms. Any pause above zero has the loop poll its sockets and timers; sleep(0) only
#: runs greenlets already woken, so timers still waited (worst loop lag per 32 MB stream:
#: 70-80 ms without the pause, 7-8 ms with it).
YIELD_S = 0.0001
#: Unread body held in memory before the rest goes to the file: above the pump's largest batch
#: (4 MiB, pump.py), so a pump that keeps up never waits for the file. Through the file, a
#: write, a read and the file's creation and close were 10% of a single-threaded worker at
#: esn 256 depth 3 frame 1024; held here, the worker's CPU per MB fell to 0.88-0.94x and its
#: MB/s rose 1.01-1.04x (bench.ab, three runs).
MEMORY_BYTES = 8 << 20


class Spooled:
    def __init__(self, source: InputSource) -> None:
        self._source = source
        self.size = source.size
        self._memory: deque[bytes | memoryview] = deque()  # the unread pieces before the file's, in order
        self._memory_bytes = 0
        self._file: IO[bytes] | None = None
        self._written = 0  # to the file
        self._position = 0  # read from the file
        self._eof = False
        self._error: BaseException | None = None
        self._ready = Event()
        self._filler: gevent.Greenlet | None = None
        self._want = PIECE_MIN

    def read(self, n: int) -> bytes:
        self._want = max(PIECE_MIN, min(n, PIECE_MAX))
        if self._filler is None:  # started by the first read: a refused request reads nothing
            self._filler = gevent.spawn(self._fill)
        while True:
            if self._memory:
                piece = self._memory.popleft()
                if len(piece) > n:  # the rest stays a view: a piece read in many small parts is copied once
                    view = memoryview(piece)
                    piece, rest = view[:n], view[n:]
                    self._memory.appendleft(rest)
                self._memory_bytes -= len(piece)
                return bytes(piece)  # a whole bytes piece is returned as it is, not copied
            if self._position < self._written:
                assert self._file is not None
                data = os.pread(self._file.fileno(), min(n, self._written - self._position), self._position)
                self._position += len(data)
                return data
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._ready.clear()
            self._ready.wait()

    def _fill(self) -> None:
        try:
            while piece := self._source.read(self._want):
                if self._position == self._written and self._memory_bytes + len(piece) <= MEMORY_BYTES:
                    self._memory.append(piece)  # nothing unread in the file: memory keeps the order
                    self._memory_bytes += len(piece)
                else:
                    self._spill(piece)
                self._ready.set()
                gevent.sleep(YIELD_S)
            self._eof = True
        except Exception as exc:  # noqa: BLE001 - handed to the reader, raised where it happened
            self._error = exc
        finally:
            self._ready.set()

    def _spill(self, piece: bytes) -> None:
        """Append `piece` to the file, made on first use."""
        if self._file is None:
            self._file = tempfile.TemporaryFile()
        view = memoryview(piece)
        while view:
            view = view[os.write(self._file.fileno(), view):]
        self._written += len(piece)

    def close(self) -> None:
        if self._filler is not None:
            self._filler.kill(block=False)
        if self._file is not None:
            self._file.close()
        self._source.close()
