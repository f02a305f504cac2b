"""/stream_process and /stream_chunks against the real gunicorn+gevent server."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import requests

from dtesn.client.duplex import DuplexResponse, pattern
from dtesn.engine import ReservoirParams, session
from dtesn.streaming.compression import unpack
from dtesn.streaming.pump import BATCH_BYTES, BULK_BATCH_CHUNKS, batch_chunks
from tests.support.sse import events

TEXT = ("Deep tree echo state networks stream their states. " * 200).encode()


def stream(server, path, *, timeout=60, **kwargs):
    method = "POST" if ("json" in kwargs or "data" in kwargs) else "GET"
    r = requests.request(method, server.url + "/deep_tree_echo/" + path, stream=True, timeout=timeout, **kwargs)
    return r, list(events(r))


def engine_features(data: bytes, **params):
    s = session(ReservoirParams(**params))
    result = s.feed(data, final=True)
    return result.features, result.digest


def assembled(evs) -> np.ndarray:
    parts = []
    for ev in evs:
        if ev.type != "chunk":
            continue
        body = ev.json
        result = json.loads(unpack(body["data"], body["encoding"])) if body["compressed"] else body["result"]
        parts.extend(result["features"])
    return np.array(parts, dtype=np.float32)


def test_stream_process_event_order_fields_ids_and_headers(server):
    r, evs = stream(server, "stream_process", json={"input_data": TEXT.decode(), "esn_size": 256, "membrane_depth": 3})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Accel-Buffering"] == "no" and r.headers["X-Server-Rendered"] == "true"
    rid = r.headers["X-Request-ID"]
    types = [ev.type for ev in evs]
    assert types[0] == "metadata" and types[-1] == "completion"
    assert set(types) == {"metadata", "chunk", "completion"}, "no heartbeat: input under 50 KB and fast"
    assert evs[0].retry == 3000

    meta = evs[0].json
    assert meta["input_bytes"] == len(TEXT) and meta["chunk_size"] == 4096
    assert meta["estimated_chunks"] == -(-len(TEXT) // 4096)
    assert (meta["membranes"], meta["neurons"], meta["frame_size"]) == (4, 256, 64)
    assert meta["timeout_prevention_enabled"] is True and meta["heartbeat_interval_s"] == 25.0
    for ev in evs:
        assert ev.json["request_id"] == rid and ev.json["timestamp"] > 0

    chunks = [ev for ev in evs if ev.type == "chunk"]
    assert [ev.id for ev in chunks] == [f"{rid}:{i}" for i in range(len(chunks))]
    assert [c.json["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert [c.json["offset"] for c in chunks] == [i * 4096 for i in range(len(chunks))]
    assert sum(c.json["bytes"] for c in chunks) == len(TEXT)
    progress = [c.json["progress"] for c in chunks]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert all(c.json["processing_time_ms"] > 0 for c in chunks)

    done = evs[-1].json
    assert evs[-1].id == f"{rid}:done"
    features, digest = engine_features(TEXT, esn_size=256, membrane_depth=3)
    assert done["final_digest"] == digest == chunks[-1].json["result"]["digest"]
    assert done["total_chunks"] == len(chunks) and done["bytes_processed"] == len(TEXT)
    assert done["total_steps"] == len(features)
    assert done["throughput_bytes_per_sec"] == pytest.approx(len(TEXT) / (done["duration_ms"] / 1000), rel=0.01)
    assert np.array_equal(assembled(evs), features)


@pytest.mark.parametrize("chunk_size", [128, 1000, 8192])
def test_stream_chunks_equal_the_engine_for_any_chunk_size(server, chunk_size):
    r, evs = stream(server, f"stream_chunks?chunk_size={chunk_size}&esn_size=128&membrane_depth=2&frame_size=50",
                    data=TEXT, headers={"Content-Type": "application/octet-stream"})
    assert r.headers["X-Chunk-Streaming"] == "true" and r.headers["X-Chunk-Size"] == str(chunk_size)
    features, digest = engine_features(TEXT, esn_size=128, membrane_depth=2, frame_size=50)
    assert evs[-1].json["final_digest"] == digest
    assert np.array_equal(assembled(evs), features)


def test_compressed_chunks_decode_to_the_uncompressed_ones(server):
    query = "stream_chunks?chunk_size=4096&esn_size=256&membrane_depth=4"
    _, plain = stream(server, query, data=TEXT, headers={"Content-Type": "text/plain"})
    _, packed = stream(server, query + "&enable_compression=true", data=TEXT, headers={"Content-Type": "text/plain"})
    assert packed[0].json["compression_enabled"] is True
    chunks = [ev for ev in packed if ev.type == "chunk"]
    assert all(c.json["compressed"] and c.json["encoding"] == "brotli+base64" for c in chunks)
    for p, c in zip([ev for ev in plain if ev.type == "chunk"], chunks):
        decoded = unpack(c.json["data"], c.json["encoding"])
        assert json.loads(decoded) == p.json["result"]
        assert c.json["original_size"] == len(decoded)
        assert c.json["compressed_size"] == len(base64.b64decode(c.json["data"]))
        assert len(c.json["data"]) < len(decoded)


def test_get_with_query_parameters_streams_too(server):
    r, evs = stream(server, "stream_process?input_data=hello%20there&esn_size=64&membrane_depth=1")
    assert r.status_code == 200 and evs[-1].type == "completion"
    assert evs[-1].json["final_digest"] == engine_features(b"hello there", esn_size=64, membrane_depth=1)[1]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("GET", "stream_process", {}, 400, "input_data"),
        ("GET", "stream_chunks?input_data=x&chunk_size=100", {}, 400, "chunk_size"),
        ("GET", "stream_chunks?input_data=x&chunk_size=9000", {}, 400, "chunk_size"),
        ("GET", "stream_chunks?input_data=x&enable_compression=maybe", {}, 400, "enable_compression"),
        ("GET", "stream_chunks?input_data=x&timeout_prevention=2", {}, 400, "timeout_prevention"),
        ("POST", "stream_process", {"json": {"input_data": "x", "membrane_depth": 8, "esn_size": 100}}, 400, "esn_size"),
        ("POST", "stream_process", {"data": b"x", "headers": {"Content-Type": "application/xml"}}, 415, None),
        ("PUT", "stream_process", {}, 405, None),
    ],
)
def test_bad_input_is_answered_before_the_stream(server, method, path, kwargs, status, field):
    r = requests.request(method, server.url + "/deep_tree_echo/" + path, timeout=10, **kwargs)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["field"] == field


def _first_event_delay(server, body_size: int) -> float:
    """Time from the request's start to the first event, while the body is still being sent."""
    r = DuplexResponse(server.port, "/deep_tree_echo/stream_chunks?chunk_size=8192", pattern(body_size), body_size)
    try:
        next(events(r))
        return time.monotonic() - r.started
    finally:
        r.close()


def test_results_arrive_while_a_fast_upload_is_still_being_sent(server):
    """The spool reads a raw body as fast as it comes, but a body arriving faster than that
    must not keep the event loop to itself: the first results (and every other stream on
    the worker) wait on it. Before, a loopback upload was spooled whole first."""
    size, sent = 128 * 1024 * 1024, [0]

    def body():
        for piece in pattern(size):
            sent[0] += len(piece)
            yield piece

    query = "esn_size=32&membrane_depth=1&frame_size=1024&max_chunk_size=16384"
    r = DuplexResponse(server.port, f"/deep_tree_echo/stream_large_dataset?{query}", body(), size)
    try:
        first = next(ev for ev in events(r) if ev.event == "chunk")
        at_first_chunk = sent[0]
    finally:
        r.close()
    assert first.json["index"] == 0
    assert at_first_chunk < size // 2


def test_time_to_first_byte_does_not_depend_on_input_size(server):
    small = min(_first_event_delay(server, 1024) for _ in range(3))
    large = min(_first_event_delay(server, 50 * 1024 * 1024) for _ in range(3))
    assert small < 0.1 and large < 0.1


def test_batches_grow_past_a_mebibyte_only_where_the_engine_is_fast():
    assert batch_chunks(None, 16384, 64) == 1  # the rate is measured on a first chunk
    fast = batch_chunks(650_000, 16384, 1024)  # 1 MiB in 1.6 ms
    assert BATCH_BYTES < fast * 16384 and fast <= BULK_BATCH_CHUNKS
    assert batch_chunks(450_000, 16384, 64) * 16384 == BATCH_BYTES  # 1 MiB in 36 ms
    assert batch_chunks(30_000, 16384, 64) == 5  # about 50 ms of compute
    assert batch_chunks(700_000, 128, 64) * 128 == BATCH_BYTES  # small chunks: their events cost
