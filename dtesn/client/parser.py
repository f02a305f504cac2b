"""Server-Sent Events, parsed from bytes by the WHATWG rules (the HTML standard's "event
stream interpretation"), in time linear in the stream's size.

The cases other clients get wrong, each handled here: lines end with CR, LF or CRLF, and a
CRLF may be split across two reads; a UTF-8 BOM opens the stream at most once; one space
after the colon is dropped, not more; an `id` containing NUL is ignored; `retry` counts only
when it is all ASCII digits; an event with no `data` line dispatches nothing; the last event
id carries over to later events. A line is scanned once however many reads it arrives in (a
10 MB event in 4 KB pieces costs what the bytes cost), and an event over `max_event_size`
raises EventTooLarge instead of growing without bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"[\r\n]")
#: Default cap on one event's data (and on one line): above the server's largest event.
MAX_EVENT_SIZE = 64 << 20


class EventTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"an event exceeds max_event_size ({limit} bytes)")
        self.limit = limit


@dataclass(frozen=True)
class ServerEvent:
    data: str
    event: str = "message"
    id: str = ""  # the stream's last event id when this one was dispatched


class EventParser:
    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self.max_event_size = max_event_size
        self.last_event_id = ""
        self.retry_ms: int | None = None  # the newest valid `retry:` seen
        self._buffer = bytearray()
        self._pos = 0  # where the unparsed bytes start
        self._scan = 0  # where to look for the next line end (the line so far has none)
        self._started = False  # past the BOM check
        self._skip_lf = False  # the last line ended with CR: a following LF is its CRLF
        self._data: list[bytes] = []
        self._data_size = 0
        self._type = b""

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        """The events completed by `chunk`."""
        buffer = self._buffer
        buffer += chunk
        if not self._started:
            if len(buffer) < len(BOM) and BOM.startswith(bytes(buffer)):
                return []
            if buffer.startswith(BOM):
                del buffer[: len(BOM)]
            self._started = True
        out: list[ServerEvent] = []
        while True:
            if self._skip_lf and self._pos < len(buffer):
                if buffer[self._pos] == 0x0A:
                    self._pos += 1
                self._skip_lf = False
            match = _EOL.search(buffer, max(self._pos, self._scan))
            if match is None:
                self._scan = len(buffer)
                if len(buffer) - self._pos > self.max_event_size:
                    raise EventTooLarge(self.max_event_size)
                break
            end = match.start()
            line = bytes(buffer[self._pos : end])
            self._pos = end + 1
            self._skip_lf = buffer[end] == 0x0D
            event = self._line(line)
            if event is not None:
                out.append(event)
        if self._pos > len(buffer) // 2:  # drop what was parsed: amortised, a copy of at most half
            del buffer[: self._pos]
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0
        return out

    def _line(self, line: bytes) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_size:
                raise EventTooLarge(self.max_event_size)
        elif name == b"event":
            self._type = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value and value.isdigit() and value.isascii():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        data, kind = self._data, self._type
        self._data, self._data_size, self._type = [], 0, b""
        if not data:
            return None
        return ServerEvent(b"\n".join(data).decode("utf-8", "replace"), kind.decode("utf-8", "replace") or "message",
                           self.last_event_id)
