"""`SSEUser`: a Locust user for Server-Sent Event endpoints, any server's.

Locust's own timer stops at a streamed response's headers, so a load test of SSE needs its
own measurements. A subclass calls `self.stream(path, ...)`, which reads the stream with a
duplex client (the body is sent while events are read, as a live feed needs) and fires
Locust request events (request_type "SSE") named after the stream:

- `<name>: time to first byte` (the response's headers), `<name>: time to first event`;
  a stream opened while Locust is still spawning is timed under `... (while spawning)`
  (Locust starts each second's users in one instant: a burst, not the load's concurrency);
- `<name>: gap between events`, for every event after the first: a failure when it is
  longer than the stream's heartbeat interval (its metadata's `heartbeat_interval_s`) plus
  `gap_tolerance_s`;
- `<name>: completion`, the whole stream: a failure when it ends without an event whose
  `type` contains "completion" (or with an HTTP status other than 200).

Importing this module imports Locust, which monkey-patches the process: `dtesn.client`
does not import it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from locust import User
from locust.runners import STATE_SPAWNING

from .duplex import DuplexResponse
from .parser import EventParser


class StreamFailure(Exception):
    pass


@dataclass
class TimedEvent:
    data: str
    event: str
    id: str
    arrived: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.data)


class SSEUser(User):
    abstract = True
    #: Seconds an event may come later than the stream's heartbeat interval.
    gap_tolerance_s = 0.5

    def on_start(self) -> None:
        url = urlsplit(self.host or "")
        if url.scheme != "http" or not url.hostname:
            raise ValueError("--host must be http://host[:port] (the SSE user speaks plain HTTP)")
        self.sse_host, self.sse_port = url.hostname, url.port or 80

    def fire(self, name: str, milliseconds: float, length: int = 0, error: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type="SSE", name=name, response_time=milliseconds,
                                             response_length=length, exception=error, context={})

    def stream(self, path: str, body: Iterable[bytes] | None = None, size: int | None = None, *, name: str,
               headers: dict[str, str] | None = None) -> list[TimedEvent]:
        """Open a stream (a POST of `body`, or a GET when it is None), time it as above, and
        return its events (none when it failed)."""
        started = time.monotonic()
        runner = self.environment.runner
        spawning = " (while spawning)" if runner is not None and runner.state == STATE_SPAWNING else ""
        try:
            response = DuplexResponse(self.sse_port, path, body, size, headers=headers, host=self.sse_host)
        except OSError as exc:
            self.fire(f"{name}: time to first byte{spawning}", (time.monotonic() - started) * 1000, error=exc)
            return []
        got: list[TimedEvent] = []
        received = 0
        try:
            self.fire(f"{name}: time to first byte{spawning}", (time.monotonic() - started) * 1000)
            if response.status != 200:
                raise StreamFailure(f"HTTP {response.status}")
            parser, interval = EventParser(), None
            for piece in response.iter_content():
                received += len(piece)
                for sse in parser.feed(piece):
                    event = TimedEvent(sse.data, sse.event, sse.id)
                    if not got:
                        self.fire(f"{name}: time to first event{spawning}", (event.arrived - started) * 1000)
                        interval = event.json.get("heartbeat_interval_s")
                    else:
                        gap = event.arrived - got[-1].arrived
                        late = interval is not None and gap > interval + self.gap_tolerance_s
                        self.fire(f"{name}: gap between events", gap * 1000, len(sse.data),
                                  StreamFailure(f"{gap:.2f} s without an event (interval {interval} s)") if late else None)
                    got.append(event)
            if not got or "completion" not in got[-1].json.get("type", ""):
                raise StreamFailure("the stream ended without its completion event")
            self.fire(f"{name}: completion", (time.monotonic() - started) * 1000, received)
        except (OSError, StreamFailure, ValueError) as exc:
            self.fire(f"{name}: completion", (time.monotonic() - started) * 1000, received, exc)
            return []
        finally:
            response.close()
        return got
