"""/stream_optimized: bandwidth policies from config/bandwidth.toml, auto, progressive rendering."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from dtesn.client.duplex import DuplexResponse, pattern
from dtesn.engine import ReservoirParams, session
from dtesn.streaming.bandwidth import PolicyError, load_policies
from dtesn.streaming.payload import decode_features
from tests.support.sse import events, parse

POLICIES = load_policies()
ENGINE = "esn_size=256&membrane_depth=4&frame_size=8"
TEXT = ("Deep tree echo state networks stream their states to browsers. " * 600).encode()


def stream(server, query: str, body: bytes = TEXT, accept: str = "identity") -> tuple[requests.Response, list]:
    r = requests.post(f"{server.url}/deep_tree_echo/stream_optimized?{ENGINE}&{query}", data=body, stream=True,
                      timeout=60, headers={"Content-Type": "text/plain", "Accept-Encoding": accept})
    return r, list(events(r))


def engine_features(body: bytes = TEXT) -> np.ndarray:
    return session(ReservoirParams(esn_size=256, membrane_depth=4, frame_size=8)).feed(body, final=True).features


def rows_of(evs) -> np.ndarray:
    """The features a client rebuilds: binary chunk payloads, or partial rows."""
    rows = []
    for ev in evs:
        body = ev.json
        if ev.event == "partial":
            rows.extend(body["rows"])
        elif ev.event == "chunk" and not body.get("progressive"):
            rows.extend(decode_features(body["data"], encoding=body["encoding"], method=body["compression_method"],
                                        transform=body["transform"], dtype=body["dtype"], shape=tuple(body["shape"])).tolist())
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("hint", ["low", "medium", "high"])
def test_each_policy_streams_the_engines_features_with_its_settings(server, hint):
    r, evs = stream(server, f"bandwidth_hint={hint}")
    policy = POLICIES[hint]
    assert r.headers["X-Bandwidth-Hint"] == hint and r.headers["Content-Type"].startswith("text/event-stream")
    meta = evs[0]
    assert meta.event == "metadata" and meta.retry == policy.retry_ms
    assert meta.json["policy"]["name"] == hint and meta.json["optimal_chunk_size"] == policy.chunk_size
    assert meta.json["heartbeat_interval_s"] == policy.heartbeat_interval
    chunks = [ev for ev in evs if ev.event == "chunk"]
    assert len(chunks) == -(-len(TEXT) // policy.chunk_size)
    assert np.array_equal(rows_of(evs), engine_features())
    assert all(c.json["compressed_size"] <= c.json["original_size"] for c in chunks)
    assert evs[-1].event == "completion" and evs[-1].json["type"] == "optimized_completion"


def test_without_adaptive_compression_only_the_policys_codec_is_used(server):
    _, evs = stream(server, "bandwidth_hint=low&adaptive_compression=false")
    methods = {ev.json["compression_method"] for ev in evs if ev.event == "chunk"}
    assert methods <= {POLICIES["low"].codec, "none"} and POLICIES["low"].codec in methods
    _, evs = stream(server, "bandwidth_hint=low&adaptive_compression=true", body=bytes(range(256)) * 200)
    assert {ev.json["compression_method"] for ev in evs if ev.event == "chunk"} <= {"zlib", "gzip", "brotli", "none"}


def test_progressive_rendering_sends_renderable_pieces_then_a_marker(server):
    _, evs = stream(server, "bandwidth_hint=medium&enable_progressive_rendering=true")
    piece_bytes = POLICIES["medium"].piece_bytes
    partials = [ev for ev in evs if ev.event == "partial"]
    assert partials and all(len(ev.data) < 2 * piece_bytes for ev in partials)
    assert all(ev.id is None for ev in partials)  # resume points are whole chunks
    assert all({"type", "request_id", "timestamp"} <= set(ev.json) for ev in partials)
    for ev in evs:
        if ev.event == "chunk":
            assert ev.json["progressive"] is True and ev.json["pieces"] >= 1
    for i, ev in enumerate(evs):  # each marker closes the pieces of its own chunk
        if ev.event == "chunk":
            mine = [p for p in evs[:i] if p.event == "partial" and p.json["index"] == ev.json["index"]]
            assert len(mine) == ev.json["pieces"] and sum(len(p.json["rows"]) for p in mine) == ev.json["steps"]
    assert np.array_equal(rows_of(evs), engine_features())


def test_small_events_are_coalesced_up_to_the_write_buffer(server):
    r = requests.post(f"{server.url}/deep_tree_echo/stream_optimized?{ENGINE}&bandwidth_hint=high", data=TEXT,
                      stream=True, timeout=60, headers={"Content-Type": "text/plain", "Accept-Encoding": "identity"})
    writes = list(r.raw.read_chunked(decode_content=False))
    evs = list(parse(writes))
    assert len(writes) < len(evs)
    assert max(len(w) for w in writes) <= POLICIES["high"].write_buffer + max(len(ev.data) + 200 for ev in evs)


@pytest.mark.parametrize("query, field", [
    ("bandwidth_hint=fast", "bandwidth_hint"),
    ("adaptive_compression=maybe", "adaptive_compression"),
    ("enable_progressive_rendering=2", "enable_progressive_rendering"),
])
def test_bad_options_are_400(server, query, field):
    r = requests.post(f"{server.url}/deep_tree_echo/stream_optimized?{query}", data=TEXT, timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["field"] == field


def policy_moves(server, rcvbuf: int | None, read_rate: float | None, slow_s: float, size: int,
                 until: str, limit_s: float = 60.0) -> tuple[float, list[dict]]:
    """Stream with `auto`, reading at `read_rate` bytes/s (None: as fast as possible) for
    `slow_s` seconds, then as fast as possible until a move to `until` (or the end): what the
    server wrote while the reader was slow waits behind its socket buffers. The start time
    (epoch) and the policy events."""
    started_at, started = time.time(), time.monotonic()
    r = DuplexResponse(server.port, f"/deep_tree_echo/stream_optimized?{ENGINE}&bandwidth_hint=auto",
                       pattern(size), size, rcvbuf=rcvbuf)
    moves: list[dict] = []
    try:
        buffered = b""
        for piece in r.iter_content():
            buffered += piece
            *blocks, buffered = buffered.split(b"\n\n")
            moves += [ev.json for ev in parse([b + b"\n\n" for b in blocks]) if ev.event == "policy"]
            if any(m["to"] == until for m in moves) or time.monotonic() - started > limit_s:
                break
            if read_rate and time.monotonic() - started < slow_s:
                time.sleep(len(piece) / read_rate)
    finally:
        r.close()
    return started_at, moves


def test_auto_moves_down_for_a_slow_reader(server):
    slow_s = 6.0
    started, moves = policy_moves(server, rcvbuf=4096, read_rate=40_000, slow_s=slow_s, size=8 << 20, until="low")
    down = [m for m in moves if m["to"] == "low"]
    seen = [(round(m["timestamp"] - started, 2), m["from"], m["to"], m["measured_bytes_per_sec"]) for m in moves]
    assert down and down[0]["from"] == "medium", seen
    assert down[0]["timestamp"] - started < slow_s  # decided while the reader was slow
    assert down[0]["writes_blocked"] and down[0]["measured_bytes_per_sec"] < POLICIES["medium"].min_bytes_per_sec


def test_auto_moves_up_for_a_fast_reader(server):
    _, moves = policy_moves(server, rcvbuf=None, read_rate=None, slow_s=0, size=16 << 20, until="high")
    assert [(m["from"], m["to"]) for m in moves] == [("medium", "high")]


def test_policies_file_is_validated(tmp_path):
    bad = tmp_path / "bandwidth.toml"
    text = (load_policies.__globals__["POLICIES_FILE"]).read_text()
    bad.write_text(text.replace("write_buffer = 2048", "write_buffer = 100"))
    with pytest.raises(PolicyError, match=r"\[low\] write_buffer"):
        load_policies(bad)
    bad.write_text(text.replace("[high]", "[turbo]"))
    with pytest.raises(PolicyError, match="exactly the policies"):
        load_policies(bad)
