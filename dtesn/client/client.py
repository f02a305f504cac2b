"""A Python client for dtesn-stream that resumes by itself: `Client(url).stream(...)`.

What the usual Python SSE clients leave to their callers, done here: on a dropped
connection, a recoverable error event (a deploy's drain), a 5xx or a stream gone idle (no
byte for `idle_timeout`, a few heartbeat intervals) it reconnects with `Last-Event-ID`
after the server's `retry` delay, backing off exponentially with jitter above it when
attempts keep failing, within `max_attempts` in a row and an overall `deadline`. It stops
on the completion event and on 204, never yields a chunk twice (its index is in the event
id), and decodes br/gzip transport compression, the per-event compression of /stream_chunks
(`enable_compression`: `event["result"]` as if it had not been compressed), and every chunk's
features into a NumPy array (`event["features"]`): the binary payloads of
/stream_large_dataset and /stream_optimized, and the JSON features of the other two.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import brotli
import numpy as np

from ..streaming.compression import unpack
from ..streaming.payload import decode_features
from .parser import MAX_EVENT_SIZE, EventParser, ServerEvent

DEFAULT_RETRY_MS = 3000  # until the server says otherwise (it opens every stream with `retry:`)
IDLE_DEFAULT_S = 75.0  # three of the server's default heartbeat intervals (20-25 s)
IDLE_HEARTBEATS = 3
READ_BYTES = 1 << 16


class ClientError(Exception):
    """The server refused the request (4xx): bad parameters, unknown dataset, bad key."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class StreamError(Exception):
    """The stream ended with an error event that is not recoverable."""

    def __init__(self, event: dict) -> None:
        super().__init__(event.get("error", "the stream failed"))
        self.event = event


class GaveUp(Exception):
    """Reconnecting failed `max_attempts` times in a row, or the deadline passed."""


@dataclass
class _Resumable:
    """Where a stream stands across its connections."""

    last_event_id: str = ""
    last_chunk: int = -1
    retry_ms: int = DEFAULT_RETRY_MS
    failures: int = 0
    started: float = field(default_factory=time.monotonic)
    idle_s: float = 75.0  # no byte for this long: the stream is idle, reconnect


class _Retry(Exception):
    """This connection ended before the stream did: reconnect after `delay_ms` (None: the
    server's retry, backed off by failures)."""

    def __init__(self, reason: str, delay_ms: int | None = None, progressed: bool = False) -> None:
        super().__init__(reason)
        self.delay_ms = delay_ms
        self.progressed = progressed


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 prefix: str = "/deep_tree_echo", connect_timeout: float = 10.0, idle_timeout: float | None = None,
                 max_attempts: int = 8, deadline: float | None = None, backoff_max: float = 30.0,
                 max_event_size: int = MAX_EVENT_SIZE, on_retry: Callable[[str, float], None] | None = None) -> None:
        """`idle_timeout` (s) defaults to three of the stream's heartbeat intervals (from its
        metadata; 75 s when it has none);
        `deadline` (s, None: none) bounds a whole stream, reconnects included; `on_retry(reason,
        delay_s)` is told of each reconnect."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.prefix = "/" + prefix.strip("/")
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.backoff_max = backoff_max
        self.max_event_size = max_event_size
        self.on_retry = on_retry
        self._parts = parts

    # -- datasets ----------------------------------------------------------------------

    def upload(self, path_or_bytes: bytes | str | os.PathLike) -> str:
        """Upload a file (its path, as a str or a pathlib.Path), or bytes, as a dataset; its
        id. A file is sent from disk, never read whole into memory."""
        body, size = _body(path_or_bytes if isinstance(path_or_bytes, bytes | bytearray | memoryview)
                           else Path(path_or_bytes))
        conn = self._connection()
        try:
            conn.request("POST", f"{self.prefix}/datasets", body=body, headers=self._headers(
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)}))
            response = conn.getresponse()
            answer = response.read()
        finally:
            _close(body)
            conn.close()
        if response.status != 201:
            raise ClientError(response.status, _message(answer))
        return json.loads(answer)["dataset_id"]

    # -- streams -----------------------------------------------------------------------

    def stream(self, endpoint: str, data: bytes | str | os.PathLike | None = None, *, dataset_id: str | None = None,
               last_event_id: str = "", **fields: Any) -> Iterator[dict]:
        """The stream's events as dicts (with `event`, the SSE event name, and `event_id`),
        each once, in order, across reconnects.

        `data` is the input (bytes, text, or a pathlib.Path: sent as a raw body and resent on
        a reconnect); or `dataset_id` names an uploaded one (a GET, as a browser would); or
        neither, with `input_data=...` among the fields. Raises ClientError (4xx),
        StreamError (a fatal error event), GaveUp.
        """
        endpoint = endpoint.strip("/")
        query = {k: _field(v) for k, v in fields.items()}
        if dataset_id is not None:
            query["dataset_id"] = dataset_id
        method = "POST" if data is not None else "GET"
        path = f"{self.prefix}/{endpoint}" + (f"?{urlencode(query)}" if query else "")
        state = _Resumable(last_event_id=last_event_id, idle_s=self.idle_timeout or IDLE_DEFAULT_S)
        while True:
            try:
                yield from self._connect(method, path, data, state)
                return
            except _Retry as retry:
                if retry.progressed:
                    state.failures = 0
                state.failures += 1
                delay = self._delay(retry.delay_ms, state)
                if state.failures > self.max_attempts:
                    raise GaveUp(f"gave up after {self.max_attempts} failed reconnects: {retry}") from None
                if self.deadline is not None and time.monotonic() + delay - state.started > self.deadline:
                    raise GaveUp(f"gave up: the deadline of {self.deadline:g} s passed ({retry})") from None
                if self.on_retry is not None:
                    self.on_retry(str(retry), delay)
                time.sleep(delay)

    def _delay(self, delay_ms: int | None, state: _Resumable) -> float:
        """The server's retry for a first failure; doubling, with up to 50% jitter above it,
        for each failure in a row after it."""
        base = (state.retry_ms if delay_ms is None else delay_ms) / 1000
        if state.failures <= 1:
            return base
        backoff = min(self.backoff_max, base * 2 ** (state.failures - 1))
        return backoff + random.uniform(0, backoff / 2)

    def _connect(self, method: str, path: str, data, state: _Resumable) -> Iterator[dict]:
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "br, gzip"}
        if state.last_event_id:
            headers["Last-Event-ID"] = state.last_event_id
        body = None
        if data is not None:
            body, size = _body(data)
            headers.update({"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        conn = self._connection()
        progressed = False
        try:
            try:
                conn.request(method, path, body=body, headers=self._headers(headers))
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(f"cannot connect: {exc}") from None
            finally:
                _close(body)
            if response.status == 204:
                return
            if response.status >= 500 or response.status in (408, 429):
                retry_after = response.getheader("Retry-After")
                answer = response.read()
                raise _Retry(f"HTTP {response.status}: {_message(answer)}",
                             int(float(retry_after) * 1000) if retry_after and retry_after.isdigit() else None)
            if response.status != 200:
                raise ClientError(response.status, _message(response.read()))
            if conn.sock is not None:
                conn.sock.settimeout(state.idle_s)
            decode = _decoder(response.getheader("Content-Encoding", ""))
            parser = EventParser(self.max_event_size)
            parser.last_event_id = state.last_event_id
            while True:
                try:
                    raw = response.read1(READ_BYTES)
                except TimeoutError:
                    raise _Retry(f"no byte for {state.idle_s:g} s: the stream is idle", 0, progressed) from None
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retry(f"the connection broke: {exc}", None, progressed) from None
                if not raw:
                    raise _Retry("the connection closed before the stream's end", None, progressed)
                for sse in parser.feed(decode(raw)):
                    if parser.retry_ms is not None:
                        state.retry_ms = parser.retry_ms
                    event = self._accept(sse, state)
                    if event is None:
                        continue
                    progressed = True
                    interval = event.get("heartbeat_interval_s")
                    if self.idle_timeout is None and isinstance(interval, int | float) and interval > 0:
                        state.idle_s = IDLE_HEARTBEATS * interval
                        if conn.sock is not None:
                            conn.sock.settimeout(state.idle_s)
                    if event.get("recoverable") is True and "error" in event:
                        state.last_event_id = event.get("resume_from") or state.last_event_id
                        raise _Retry(event["error"], event.get("retry_after_ms"), progressed=True)
                    if "error" in event and "recoverable" in event:
                        raise StreamError(event)
                    yield event
                    if sse.id.endswith(":done"):
                        return
        finally:
            conn.close()

    def _accept(self, sse: ServerEvent, state: _Resumable) -> dict | None:
        """The event as a dict (features decoded), or None for one already yielded."""
        try:
            event = json.loads(sse.data)
        except ValueError:
            event = {"data": sse.data}
        if not isinstance(event, dict):
            event = {"data": event}
        event.setdefault("event", sse.event)
        if sse.id:
            event.setdefault("event_id", sse.id)
        index = _chunk_index(sse.id)
        if index is not None:
            if index <= state.last_chunk:
                return None
            state.last_chunk = index
        if sse.id and event.get("recoverable") is not True:
            state.last_event_id = sse.id
        if "shape" in event and "data" in event and "compression_method" in event:  # a binary payload
            event["features"] = decode_features(event["data"], encoding=event["encoding"],
                                                method=event["compression_method"], transform=event["transform"],
                                                dtype=event["dtype"], shape=tuple(event["shape"]))
        elif event.get("compressed") is True and "data" in event and "encoding" in event:  # enable_compression
            event["result"] = json.loads(unpack(event.pop("data"), event["encoding"]))
        if isinstance(event.get("result"), dict) and "features" in event["result"]:  # JSON features
            event["features"] = np.asarray(event["result"]["features"], dtype=np.float32)
        return event

    def _connection(self) -> http.client.HTTPConnection:
        parts = self._parts
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        return kind(parts.hostname or "", parts.port, timeout=self.connect_timeout)

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _chunk_index(event_id: str) -> int | None:
    _, _, tail = event_id.rpartition(":")
    return int(tail) if tail.isdigit() else None


def _field(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _body(data: bytes | str | os.PathLike):
    """(body, size): bytes as they are, text (str) as UTF-8, a path (pathlib.Path or any
    os.PathLike) as its open file."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), len(data)
    if isinstance(data, str):
        encoded = data.encode("utf-8")
        return encoded, len(encoded)
    path = Path(data)
    return path.open("rb"), path.stat().st_size


def _close(body) -> None:
    if hasattr(body, "close"):
        body.close()


def _message(answer: bytes) -> str:
    try:
        return json.loads(answer)["error"]
    except (ValueError, KeyError, TypeError):
        return answer[:200].decode("utf-8", "replace")


def _decoder(encoding: str) -> Callable[[bytes], bytes]:
    if encoding == "br":
        return brotli.Decompressor().process
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    return lambda raw: raw


