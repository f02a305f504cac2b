"""The floor bench.burst compares against: a WSGI app that does nothing but answer like a
stream (headers, a comment, three tiny events), run by the same gunicorn gevent worker.

What a burst costs here is gunicorn's and gevent's share alone (accepting, parsing the
request, writing, closing); ours minus this is what the kit itself adds per stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


def app(environ: dict, start_response: Callable) -> Iterator[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return iter([b": open\n\n", *(b'event: chunk\ndata: {"i": %d}\n\n' % i for i in range(3))])
