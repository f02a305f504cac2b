"""Requests written byte by byte, for clients that misbehave (short bodies, half-closes, stalls)."""

from __future__ import annotations

import json
import socket


def raw_request(port: int, head: str, body: bytes = b"", *, half_close: bool = True, timeout: float = 15) -> bytes:
    """Send `head` (request line and headers, without the blank line) and `body`; optionally
    half-close; return everything the server sends until it closes or `timeout` passes."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        if half_close:
            conn.shutdown(socket.SHUT_WR)
        conn.settimeout(timeout)
        out = b""
        try:
            while data := conn.recv(65536):
                out += data
        except TimeoutError:
            pass
        return out


def status_and_json(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post_head(path: str, content_type: str = "application/octet-stream", **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines)
