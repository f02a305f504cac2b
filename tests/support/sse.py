"""A small SSE reader for tests: events as they arrive over a real HTTP connection."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Iterator


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
    """Parse an SSE byte stream (per the WHATWG rules we rely on) into events."""
    buffer = b""
    retry = None
    for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
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
