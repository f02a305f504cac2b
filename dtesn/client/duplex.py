"""An HTTP/1.1 client that sends a request body while it reads the streamed response.

`requests` (like most simple clients) sends the whole body before reading: once the response
outgrows the socket buffers, server and client would both wait on each other. curl, browsers
and this client do both at once, which is what a large raw-body stream needs, and what a
load test of a live feed needs (its events arrive while its body is still being sent). Used
by the Locust user (locust.py), the tests and the benchmarks; plain HTTP only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator


def pattern(size: int, block: bytes = bytes(range(256)) * 256) -> Iterator[bytes]:
    """`size` bytes of a repeating pattern, a block at a time (never all in memory)."""
    for start in range(0, size, len(block)):
        yield block[: size - start]


class DuplexResponse:
    def __init__(self, port: int, path: str, body: Iterable[bytes] | None, size: int | None = None,
                 content_type: str = "application/octet-stream", rcvbuf: int | None = None,
                 headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        """A POST of `body` (`size` bytes, or chunked when None), or a GET when `body` is None.
        `rcvbuf` shrinks the receive buffer (set before connecting, as the kernel requires),
        so that a slow reader makes the server's writes block soon."""
        self.started = time.monotonic()
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body is None:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"
        else:
            length = f"Content-Length: {size}" if size is not None else "Transfer-Encoding: chunked"
            request = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}{length}\r\n\r\n"
        self.sock.sendall(request.encode())
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, args=(body or (), size is None), daemon=True)
        if body is not None:
            self._sender.start()
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if h)}

    def _send(self, body: Iterable[bytes], chunked: bool) -> None:
        try:
            for piece in body:
                if self._stop.is_set():
                    return
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 16)
        self._buffer += data
        return bool(data)

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            if not self._fill():
                raise ConnectionError("connection closed")
        head, self._buffer = self._buffer.split(marker, 1)
        return head

    def iter_content(self, chunk_size=None) -> Iterator[bytes]:
        """The response body, de-chunked, as it arrives."""
        while True:
            size = int(self._read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                return
            while len(self._buffer) < size + 2:
                if not self._fill():
                    raise ConnectionError("connection closed mid-chunk")
            piece, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
            yield piece

    def close(self) -> None:
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._sender.is_alive():
            self._sender.join()
