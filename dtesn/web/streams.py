"""The streaming endpoints: request parsing and headers here, the stream itself in dtesn.streaming."""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, Response, current_app, request

from ..streaming.chunk_stream import ChunkStreamSpec, chunk_stream
from .request_model import Field, ProcessingRequest, parse_request

bp = Blueprint("streams", __name__, url_prefix="/deep_tree_echo")

STREAM_PROCESS_CHUNK_BYTES = 4096
CHUNK_STREAM_HEARTBEAT_S = 25.0
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Server-Rendered": "true",
}
CHUNK_FIELDS = (
    Field("chunk_size", int, 1024, 128, 8192),
    Field("enable_compression", bool, False),
    Field("timeout_prevention", bool, True),
)


@bp.route("/stream_process", methods=["GET", "POST"])
def stream_process():
    """SSE: metadata, a chunk event per 4096 input bytes with real progress, heartbeats, completion."""
    parsed = _parse()
    spec = _spec(parsed, STREAM_PROCESS_CHUNK_BYTES, compress=False, heartbeats=True)
    return _sse(chunk_stream(spec, **_stream_hooks()))


@bp.route("/stream_chunks", methods=["GET", "POST"])
def stream_chunks():
    """SSE in chunks of chunk_size bytes, optionally compressed, heartbeats unless turned off."""
    parsed = _parse(CHUNK_FIELDS)
    o = parsed.options
    spec = _spec(parsed, o["chunk_size"], compress=o["enable_compression"], heartbeats=o["timeout_prevention"])
    headers = {"X-Chunk-Streaming": "true", "X-Chunk-Size": str(o["chunk_size"])}
    return _sse(chunk_stream(spec, **_stream_hooks()), headers)


def _parse(extra: tuple[Field, ...] = ()) -> ProcessingRequest:
    return parse_request(request, extra, max_body_bytes=current_app.config["DTESN_SETTINGS"].max_body_bytes)


def _spec(parsed: ProcessingRequest, chunk_size: int, *, compress: bool, heartbeats: bool) -> ChunkStreamSpec:
    settings = current_app.config["DTESN_SETTINGS"]
    return ChunkStreamSpec(
        request_id=request.environ["dtesn.request_id"],
        params=parsed.params,
        source=parsed.source,
        chunk_size=chunk_size,
        heartbeat_interval=settings.heartbeat_for(CHUNK_STREAM_HEARTBEAT_S) if heartbeats else None,
        compress=compress,
        processing_mode=parsed.processing_mode,
    )


def _stream_hooks() -> dict:
    metrics = current_app.extensions["dtesn.metrics"]
    return {"client_socket": request.environ.get("gunicorn.socket"), "on_chunk": metrics.processed}


def _sse(events: Iterator[bytes], headers: dict | None = None) -> Response:
    metrics = current_app.extensions["dtesn.metrics"]
    return Response(
        _counted(events, metrics),
        content_type="text/event-stream; charset=utf-8",
        headers={**SSE_HEADERS, **(headers or {})},
    )


def _counted(events: Iterator[bytes], metrics) -> Iterator[bytes]:
    """Counts the stream as active from its first byte until it ends or the client leaves."""
    metrics.stream_opened()
    try:
        yield from events
    finally:
        metrics.stream_closed()
        events.close()
