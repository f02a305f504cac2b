"""A small SSE reader for tests: events as they arrive over a real HTTP connection.

Kept apart from the package's own parser (dtesn.client.parser) on purpose: the tests read the
server's streams with an independent reader, so a bug shared by the server's framing and the
package's parser cannot hide itself. Each event's `id` is its own `id:` line (None without one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Event:
    data: str
    id: str | None = None
    event: str | None = None
    retry: int | None = None
    arrived: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.data)

    @property
    def type(self) -> str:
        return self.json["type"]


def parse(chunks: Iterator[bytes]) -> Iterator[Event]:
    """Parse an SSE byte stream (per the WHATWG rules we rely on) into events.

    Linear in the stream's size: a multi-megabyte event arriving in small pieces must not
    be re-copied per piece, or the reader (not the server) sets the pace.
    """
    buffer = bytearray()
    retry = None
    for chunk in chunks:
        search_from = max(0, len(buffer) - 1)
        buffer += chunk
        while (end := buffer.find(b"\n\n", search_from)) != -1:
            block = bytes(buffer[:end])
            del buffer[: end + 2]
            search_from = 0
            fields: dict[str, list[str]] = {}
            for line in block.decode("utf-8").split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
            if "retry" in fields:
                retry = int(fields["retry"][-1])
            if "data" in fields:
                yield Event(
                    data="\n".join(fields["data"]),
                    id=fields.get("id", [None])[-1],
                    event=fields.get("event", [None])[-1],
                    retry=retry,
                )


def events(response) -> Iterator[Event]:
    return parse(response.iter_content(chunk_size=None))


def read_until_chunk(response, index: int) -> list[Event]:
    """Read events up to chunk `index` (by its event id), then drop the connection."""
    got = []
    for ev in events(response):
        got.append(ev)
        if ev.id and ev.id.endswith(f":{index}"):
            break
    response.close()
    return got
