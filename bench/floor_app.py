"""The floors the benchmarks compare against: WSGI apps that do nothing but answer like a
stream, run by the same gunicorn gevent worker.

`app` (bench.burst): headers, a comment, three tiny events. What a burst costs there is
gunicorn's and gevent's share alone (accepting, parsing the request, writing, closing); ours
minus this is what the kit itself adds per stream.

`upload_app` (bench.large_dataset): an upload read as it arrives and answered with as many
event bytes as /stream_large_dataset sends at the goal configuration. Its MB/s is what
gunicorn's body reading and writing alone allow, before any engine, spool or encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


def command(app_name: str, *options: str) -> list[str]:
    """The gunicorn command serving `app_name` of this module: the kit's worker class, one worker."""
    return ["gunicorn", "-k", "dtesn.worker.JSONErrorsWorker", "--workers", "1", *options,
            f"bench.floor_app:{app_name}"]


def app(environ: dict, start_response: Callable) -> Iterator[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return iter([b": open\n\n", *(b'event: chunk\ndata: {"i": %d}\n\n' % i for i in range(3))])


#: The goal configuration's chunk events: about 540 bytes for each 16 KB of input.
UPLOAD_CHUNK = 16384
UPLOAD_EVENT = b"id: floor:0\nevent: chunk\ndata: {" + b"x" * 500 + b"}\n\n"
UPLOAD_READ = 1 << 20


def upload_app(environ: dict, start_response: Callable) -> Iterator[bytes]:
    """The floor of /stream_large_dataset: the body read as it arrives (1 MiB reads, as the
    pump's batches), each MiB answered with one write of an event per 16 KB of it, then a
    completion event; no engine, no spool, no hashing, no encoding."""
    body = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

    def events() -> Iterator[bytes]:
        yield b": open\n\n"
        total = 0
        while block := body.read(UPLOAD_READ):
            total += len(block)
            yield UPLOAD_EVENT * -(-len(block) // UPLOAD_CHUNK)
        yield b'id: floor:done\nevent: completion\ndata: {"total_bytes": %d}\n\n' % total

    return events()
