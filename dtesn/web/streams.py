"""The streaming endpoints: request parsing and headers here, the stream itself in dtesn.streaming."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import cast

from flask import Blueprint, Response, request

from ..runtime import Metrics, Runtime
from ..storage.spool import Spooled
from ..streaming import transport
from ..streaming.bandwidth import HINTS, Tuner
from ..streaming.chunk_events import ChunkEvents, ChunkOptions
from ..streaming.compression import CODECS
from ..streaming.large_dataset_events import LargeDatasetEvents, PayloadOptions, optimal_chunk_size
from ..streaming.optimized_events import OptimizedEvents, OptimizedOptions
from ..streaming.payload import DTYPES, ENCODINGS
from ..streaming.resume import AlreadyComplete
from ..streaming.send_guard import guard_sends
from ..streaming.spec import EventSet, Pacing, StreamSpec
from ..streaming.stream import event_stream, resumed
from .errors import APIError
from .request_log import stream_id
from .request_model import Field, ProcessingRequest, parse_request
from .state import kit

bp = Blueprint("streams", __name__)

STREAM_PROCESS_CHUNK_BYTES = 4096
RETRY_AFTER_S = 1
CHUNK_STREAM_HEARTBEAT_S = 25.0
LARGE_DATASET_HEARTBEAT_S = 20.0
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Server-Rendered": "true",
}
#: How the binary feature payloads are written, on both endpoints that send them.
PAYLOAD_FIELDS = (
    Field("encoding", str, "base64", choices=ENCODINGS),
    Field("dtype", str, "float32", choices=tuple(DTYPES)),
    Field("codecs", str, ",".join(CODECS)),
)
OPTIMIZED_FIELDS = (
    Field("bandwidth_hint", str, "auto", choices=HINTS),
    Field("adaptive_compression", bool, True),
    Field("enable_progressive_rendering", bool, False),
    *PAYLOAD_FIELDS,
)
#: The query form of the Last-Event-ID header (which wins when both are sent: a browser
#: updates the header on each reconnect, while the URL keeps its first value).
RESUME_FIELD = Field("last_event_id", str, "")
CHUNK_FIELDS = (
    Field("chunk_size", int, 1024, 128, 8192),
    Field("enable_compression", bool, False),
    Field("timeout_prevention", bool, True),
)


LARGE_DATASET_FIELDS = (
    Field("max_chunk_size", int, 16384, 512, 16384),
    Field("compression_level", int, 1, 0, 3),
    *PAYLOAD_FIELDS,
)


@bp.route("/stream_process", methods=["GET", "POST"])
def stream_process():
    """SSE: metadata, a chunk event per 4096 input bytes with real progress, heartbeats, completion."""
    parsed = _parse()
    spec = _spec("stream_process", parsed, STREAM_PROCESS_CHUNK_BYTES, CHUNK_STREAM_HEARTBEAT_S)
    return _stream(spec, lambda s: ChunkEvents(s, ChunkOptions(compress=False, processing_mode=parsed.processing_mode)))


@bp.route("/stream_chunks", methods=["GET", "POST"])
def stream_chunks():
    """SSE in chunks of chunk_size bytes, optionally compressed, heartbeats unless turned off."""
    parsed = _parse(CHUNK_FIELDS)
    o = parsed.options
    spec = _spec("stream_chunks", parsed, o["chunk_size"], CHUNK_STREAM_HEARTBEAT_S if o["timeout_prevention"] else None)
    options = ChunkOptions(compress=o["enable_compression"], processing_mode=parsed.processing_mode)
    headers = {"X-Chunk-Streaming": "true", "X-Chunk-Size": str(o["chunk_size"])}
    return _stream(spec, lambda s: ChunkEvents(s, options), headers)


@bp.route("/stream_large_dataset", methods=["GET", "POST"])
def stream_large_dataset():
    """SSE with named events: features as compressed binary, about 100 adaptive chunks."""
    parsed = _parse(LARGE_DATASET_FIELDS)
    o = parsed.options
    options = PayloadOptions(o["compression_level"], o["encoding"], o["dtype"], _codecs(o["codecs"]))
    chunk_size = optimal_chunk_size(parsed.source.size, o["max_chunk_size"])
    spec = _spec("stream_large_dataset", parsed, chunk_size, LARGE_DATASET_HEARTBEAT_S)
    headers = {
        "X-Large-Dataset-Optimized": "true",
        "X-Compression-Level": str(o["compression_level"]),
        "X-Timeout-Prevention": "enhanced",
        "X-Max-Chunk-Size": str(o["max_chunk_size"]),
    }
    return _stream(spec, lambda s: LargeDatasetEvents(s, options), headers)


@bp.route("/stream_optimized", methods=["GET", "POST"])
def stream_optimized():
    """SSE shaped by a bandwidth policy (config/bandwidth.toml), or by the measured delivery rate."""
    parsed = _parse(OPTIMIZED_FIELDS)
    o = parsed.options
    tuner = Tuner(kit().policies, o["bandwidth_hint"])
    settings = kit().settings
    spec = _spec("stream_optimized", parsed, tuner.policy.chunk_size, tuner.policy.heartbeat_interval)
    options = OptimizedOptions(o["bandwidth_hint"], o["adaptive_compression"], o["enable_progressive_rendering"],
                               o["encoding"], o["dtype"], settings.heartbeat_interval or None, _codecs(o["codecs"]))
    headers = {
        "X-Bandwidth-Hint": o["bandwidth_hint"],
        "X-Adaptive-Compression": str(o["adaptive_compression"]).lower(),
        "X-Progressive-Rendering": str(o["enable_progressive_rendering"]).lower(),
        "X-Timeout-Prevention": "enhanced",
    }
    return _stream(spec, lambda s: OptimizedEvents(s, tuner, options), headers, paced=True)


def _codecs(text: str) -> tuple[str, ...]:
    """A comma-separated subset of the codecs, e.g. "gzip,zlib" for a browser without brotli."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in CODECS]
    if unknown or not names:
        raise APIError(400, f"codecs must be a comma-separated subset of {', '.join(CODECS)}", "codecs")
    return names


def _parse(extra: tuple[Field, ...] = ()) -> ProcessingRequest:
    state = kit()
    settings = state.settings
    # The request itself, not its context-local proxy: parse_request reads it ~25 times.
    real = request._get_current_object()  # type: ignore[attr-defined]
    return parse_request(real, (*extra, RESUME_FIELD), max_body_bytes=settings.max_body_bytes,
                         json_max_bytes=settings.json_max_bytes, body_timeout=settings.body_timeout,
                         datasets=state.runtime.datasets)


def _spec(endpoint: str, parsed: ProcessingRequest, chunk_size: int, heartbeat_default: float | None) -> StreamSpec:
    """`heartbeat_default` None turns heartbeats off; else DTESN_HEARTBEAT_INTERVAL may override it."""
    state = kit()
    settings = state.settings
    return StreamSpec(
        endpoint=endpoint,
        request_id=stream_id(request.environ),
        params=parsed.params,
        source=Spooled(parsed.source) if parsed.raw_body else parsed.source,
        chunk_size=chunk_size,
        heartbeat_interval=None if heartbeat_default is None else settings.heartbeat_for(heartbeat_default),
        resume_from=request.headers.get("Last-Event-ID") or parsed.options["last_event_id"],
        estimated_rate=state.runtime.rates.steps_per_sec(parsed.params),
    )


def _stream(spec: StreamSpec, make_events: Callable[[StreamSpec], EventSet], headers: dict | None = None,
            paced: bool = False) -> Response:
    """Start `spec`'s stream, or continue it after the client's last event id; with `paced`,
    the events also pace the writes (see Pacing).

    The stream is admitted first (a full worker refuses before reading anything); every
    answer other than a stream releases the admission and the input (a dataset's file).
    """
    runtime = kit().runtime
    metrics = runtime.metrics
    if not metrics.admit_stream(spec.endpoint, runtime.settings.max_streams):
        spec.source.close()
        raise APIError(503, "this worker serves its maximum number of streams; retry shortly", None,
                       {"Retry-After": str(RETRY_AFTER_S)})
    try:
        if spec.resume_from:
            spec = resumed(spec, runtime)
    except Exception as exc:  # answered by the error table (errors.py), once admission is released
        metrics.stream_closed()
        spec.source.close()
        if isinstance(exc, AlreadyComplete):
            return Response(status=204, headers=SSE_HEADERS)
        raise
    events = make_events(spec)
    stream = event_stream(runtime, spec, events, pacing=cast(Pacing, events) if paced else None,
                          client_socket=request.environ.get("gunicorn.socket"))
    return _sse(stream, runtime, headers)


def _sse(events: Generator[bytes, None, None], runtime: Runtime, headers: dict | None = None) -> Response:
    """The response, counted until closed; compressed as a whole when the client accepts br or gzip."""
    encoding = request.accept_encodings.best_match(transport.ENCODINGS)
    headers = {**SSE_HEADERS, **(headers or {}), "Vary": "Accept-Encoding"}
    if encoding:
        events = transport.encode(events, encoding, lambda fn, data: runtime.pool.submit_aside(fn, data).get())
        headers["Content-Encoding"] = encoding
    events = guard_sends(events, request.environ.get("gunicorn.socket"), runtime.settings.send_timeout)
    return Response(_Counted(events, runtime.metrics), content_type="text/event-stream; charset=utf-8",
                    headers=headers)


class _Counted:
    """The stream's body, counted as open from admission until the server closes it (an
    iterable with close(), not a generator: a generator never started never runs its finally),
    and its bytes as they go to the client."""

    def __init__(self, events: Generator[bytes, None, None], metrics: Metrics) -> None:
        self._events = events
        self._metrics = metrics
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        wire_bytes = self._metrics.wire_bytes
        for piece in self._events:
            wire_bytes.inc(len(piece))
            yield piece

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.close()
            self._metrics.stream_closed()
