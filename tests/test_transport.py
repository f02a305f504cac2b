"""Compressed transport: Content-Encoding br or gzip over a whole stream, each event on arrival."""

from __future__ import annotations

import shutil
import subprocess
import time
import zlib

import brotli
import pytest
import requests

from tests.support.sse import parse

QUERY = "/deep_tree_echo/stream_chunks?chunk_size=1024&esn_size=256&membrane_depth=3"
TEXT = ("The deep tree echo state network streams its states. " * 400).encode()


def decompressor(encoding: str):
    """Incremental decoding, as a client does it on arrival."""
    if encoding == "gzip":
        return zlib.decompressobj(31).decompress
    d = brotli.Decompressor()

    def decode(piece: bytes) -> bytes:
        out = d.process(piece)
        while more := d.process(b""):  # brotli (1.2) hands out a large output in parts
            out += more
        return out

    return decode


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_every_http_chunk_decodes_to_whole_events_on_arrival(server, encoding):
    r = requests.post(server.url + QUERY, data=TEXT, stream=True, timeout=60,
                      headers={"Content-Type": "text/plain", "Accept-Encoding": encoding})
    assert r.headers["Content-Encoding"] == encoding and r.headers["Vary"] == "Accept-Encoding"
    decode, wire, text = decompressor(encoding), 0, b""
    for piece in r.raw.read_chunked(decode_content=False):  # one HTTP chunk per server write
        wire += len(piece)
        out = decode(piece)
        assert out == b"" or out.endswith(b"\n\n"), "an event was held back in the compressor"
        text += out
    evs = list(parse([text]))
    assert evs[0].type == "metadata" and evs[-1].type == "completion"
    plain = requests.post(server.url + QUERY, data=TEXT, timeout=60,
                          headers={"Content-Type": "text/plain", "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    assert [e.id.split(":")[1] for e in parse([plain.content]) if e.id] == [e.id.split(":")[1] for e in evs if e.id]
    assert evs[-1].json["final_digest"] == list(parse([plain.content]))[-1].json["final_digest"]
    assert wire < 0.6 * len(plain.content)


@pytest.mark.parametrize("accept, chosen", [
    ("gzip, br", "br"),
    ("br;q=0, gzip", "gzip"),
    ("deflate", None),
    ("identity", None),
])
def test_the_encoding_follows_accept_encoding(server, accept, chosen):
    r = requests.post(server.url + QUERY, data=b"abc", timeout=30,
                      headers={"Content-Type": "text/plain", "Accept-Encoding": accept})
    assert r.headers.get("Content-Encoding") == chosen


BEAT = 0.04


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("encoding", [
    # On this machine (2026-12-02) heartbeats made 0.1 s apart while a chunk computes reach
    # curl bunched behind the next chunk with br only (their server timestamps are on time),
    # at HEAD before the Part 3 restructuring too; open in issue 15's note.
    pytest.param("br", marks=pytest.mark.xfail(reason="br arrivals bunch behind large chunks", strict=False)),
    "gzip",
])
def test_curl_compressed_sees_events_one_by_one(start_server, tmp_path, encoding):
    """`curl --compressed -N`: heartbeats arrive 0.04 s apart while the stream computes (a chunk
    takes 0.1 s on an AVX2 machine, 0.25 s on an AVX one: heartbeats 0.1 s apart, as here
    before, rarely fell between chunks on the faster one)."""
    srv = start_server(DTESN_HEARTBEAT_INTERVAL=str(BEAT))
    body = tmp_path / "body.bin"
    body.write_bytes(bytes(range(256)) * 256)  # eight chunks: 0.8-2 s of compute with the compiled kernel
    headers = tmp_path / "headers.txt"
    slow = "/deep_tree_echo/stream_chunks?chunk_size=8192&esn_size=4096&membrane_depth=6&frame_size=1"
    curl = subprocess.Popen(
        ["curl", "-sS", "-N", "--compressed", "-H", f"Accept-Encoding: {encoding}", "-D", str(headers),
         "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{body}", srv.url + slow],
        stdout=subprocess.PIPE)
    arrivals = []
    for line in curl.stdout:
        if line.startswith(b"data: "):
            arrivals.append((time.monotonic(), line))
    assert curl.wait(timeout=60) == 0
    assert f"content-encoding: {encoding}" in headers.read_text().lower()
    kinds = [next(iter(parse([line + b"\n\n"]))).type for _, line in arrivals]
    assert kinds[0] == "metadata" and kinds[-1] == "completion" and kinds.count("heartbeat") >= 3
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread > 0.6, "events arrived together: buffered"
    beats = [t for (t, _), kind in zip(arrivals, kinds) if kind == "heartbeat"]
    gaps = sorted(b - a for a, b in zip(beats, beats[1:]))
    assert gaps[len(gaps) // 2] > BEAT / 2, [(k, round(t - arrivals[0][0], 3)) for (t, _), k in zip(arrivals, kinds)]
