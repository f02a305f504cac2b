"""The Python client of dtesn-stream: streams that resume by themselves, and the CLI.

    from dtesn.client import Client
    for event in Client("http://127.0.0.1:8000").stream("stream_large_dataset", data=b"...", esn_size=256):
        ...

`dtesn.client.locust` holds a Locust user for SSE endpoints; it is not imported here
(importing Locust monkey-patches the process).
"""

from .client import Client, ClientError, GaveUp, StreamError
from .parser import EventParser, EventTooLarge, ServerEvent

__all__ = ["Client", "ClientError", "EventParser", "EventTooLarge", "GaveUp", "ServerEvent", "StreamError"]
