"""dtesn.client and the `dtesn-stream` CLI against the real server: they resume by
themselves across a restart, a frozen server and dropped connections, stop on 204, and exit
with the documented status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from dtesn.client import Client, ClientError, GaveUp
from dtesn.streaming.payload import decode_features
from tests.support.server import free_port
from tests.support.sse import events

HEAVY = {"esn_size": 4096, "membrane_depth": 4, "frame_size": 1, "chunk_size": 1024}  # 1024 steps, ~15 ms a chunk
BODY = bytes(range(256)) * 4 * 150  # 150 chunks of 1024 bytes
CLI = str(Path(sys.executable).parent / "dtesn-stream")


def reference(server, endpoint: str, body: bytes, **fields) -> list:
    query = "&".join(f"{k}={v}" for k, v in fields.items())
    return list(events(requests.post(f"{server.url}/deep_tree_echo/{endpoint}?{query}", data=body, stream=True,
                                     timeout=120, headers={"Content-Type": "application/octet-stream"})))


def chunk_indexes(lines: list[dict]) -> list[int]:
    return [int(e["event_id"].rsplit(":", 1)[1]) for e in lines if "chunk" in e["type"]]


def test_the_client_streams_decodes_features_and_matches_the_api(server):
    data = bytes(range(256)) * 200
    got = list(Client(server.url).stream("stream_large_dataset", data=data, esn_size=256, compression_level=2))
    want = reference(server, "stream_large_dataset", data, esn_size=256, compression_level=2)
    assert got[-1]["final_digest"] == want[-1].json["final_digest"]
    chunks = [e for e in got if "features" in e]
    assert len(chunks) == len([e for e in want if e.json["type"] == "compressed_chunk"]) > 1
    first = next(e.json for e in want if e.json["type"] == "compressed_chunk")
    expected = decode_features(first["data"], encoding=first["encoding"], method=first["compression_method"],
                               transform=first["transform"], dtype=first["dtype"], shape=tuple(first["shape"]))
    np.testing.assert_array_equal(chunks[0]["features"], expected)
    assert chunks[0]["event"] == "chunk" and chunks[0]["event_id"].endswith(":0")


def test_a_dataset_by_id_and_a_204_after_completion(server, tmp_path):
    client = Client(server.url)
    path = tmp_path / "input.bin"
    path.write_bytes(bytes(range(256)) * 100)
    dataset_id = client.upload(str(path))  # a path as a str, too
    got = list(client.stream("stream_chunks", dataset_id=dataset_id, chunk_size=1024))
    assert got[-1]["type"] == "completion" and got[-1]["bytes_processed"] == 25600
    assert list(client.stream("stream_chunks", dataset_id=dataset_id, last_event_id=got[-1]["event_id"])) == []
    with pytest.raises(ClientError) as refused:
        list(client.stream("stream_chunks", dataset_id="x" * 32))
    assert refused.value.status == 404


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_the_cli_finishes_across_a_server_restart_with_every_chunk_once(start_server, tmp_path):
    port = free_port()
    first = start_server(port)
    whole = reference(first, "stream_chunks", BODY, **HEAVY)
    body = tmp_path / "body.bin"
    body.write_bytes(BODY)
    out = tmp_path / "events.jsonl"
    params = [arg for k, v in HEAVY.items() for arg in ("--param", f"{k}={v}")]
    cli = subprocess.Popen([CLI, "stream_chunks", "--url", first.url, "--file", str(body), "--jsonl", str(out), *params],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() or out.read_text().count('"type":"chunk"') < 20:
            assert time.monotonic() < deadline and cli.poll() is None, "the stream got going"
            time.sleep(0.05)
        first.process.send_signal(signal.SIGTERM)  # a deploy: the stream ends with a recoverable error
        first.process.wait(30)
        start_server(port)  # the new instance, on the same address
        _, stderr = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert chunk_indexes(lines) == list(range(150))  # every chunk once, across both servers
    assert lines[-1]["type"] == "completion" and lines[-1]["final_digest"] == whole[-1].json["final_digest"]
    assert "reconnecting" in stderr


def test_the_client_reconnects_when_the_server_freezes(start_server):
    srv = start_server()
    retries: list[str] = []
    client = Client(srv.url, idle_timeout=1.5, on_retry=lambda reason, delay: retries.append(reason))
    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.extend(client.stream("stream_chunks", data=BODY, **HEAVY)))
    reader.start()
    deadline = time.monotonic() + 30
    while len(got) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (worker,) = srv.worker_pids()
    os.kill(worker, signal.SIGSTOP)  # frozen while the client reads: the connection stays open, no byte comes
    try:
        time.sleep(3)
    finally:
        os.kill(worker, signal.SIGCONT)
    reader.join(60)
    assert any("idle" in reason for reason in retries)
    assert chunk_indexes(got) == list(range(150)) and got[-1]["type"] == "completion"


def test_exit_statuses(server, start_server, tmp_path):
    gone = f"http://127.0.0.1:{free_port()}"
    usage = run_cli("stream_chunks", "--url", server.url)  # no input
    assert usage.returncode == 2 and "one of the arguments" in usage.stderr
    refused = run_cli("stream_chunks", "--url", server.url, "--data", "x", "--param", "esn_size=3")
    assert refused.returncode == 2 and "esn_size" in refused.stderr
    gave_up = run_cli("stream_chunks", "--url", gone, "--data", "x", "--max-attempts", "1")
    assert gave_up.returncode == 3 and "gave up" in gave_up.stderr
    done = run_cli("stream_chunks", "--url", server.url, "--data", "hello " * 500, "--features", str(tmp_path / "f.npy"))
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1])["type"] == "completion"
    completion = json.loads(done.stdout.splitlines()[-1])
    assert np.load(tmp_path / "f.npy").shape == (completion["total_steps"], 8)  # every step, 8 membranes (depth 4)
    resumed = run_cli("stream_chunks", "--url", server.url, "--data", "x", "--resume-from", "abc:done")
    assert resumed.returncode == 0 and resumed.stdout == ""  # 204: nothing more to do
    with pytest.raises(GaveUp):
        list(Client(gone, max_attempts=1).stream("stream_chunks", data=b"x"))


def test_a_fatal_error_event_exits_1(redis_server, start_server, tmp_path):
    """A dataset deleted while it streams (Redis store) ends the stream with a fatal error."""
    srv = start_server(DTESN_REDIS_URL=redis_server.url, DTESN_REDIS_PREFIX="cli:")
    client = Client(srv.url)
    dataset_id = client.upload(bytes(range(256)) * 4096 * 3)  # 3 MB: three parts
    cli = subprocess.Popen([CLI, "stream_chunks", "--url", srv.url, "--dataset", dataset_id, "--param", "chunk_size=8192",
                            "--param", "esn_size=2048", "--param", "frame_size=8"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None and '"metadata"' in cli.stdout.readline()
        assert requests.delete(f"{srv.url}/deep_tree_echo/datasets/{dataset_id}", timeout=10).status_code == 204
        _, stderr = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 1 and "deleted or expired" in stderr


def test_the_cli_draws_a_progress_bar_when_stderr_is_a_terminal(server):
    import pty

    leader, follower = pty.openpty()
    done = subprocess.run([CLI, "stream_chunks", "--url", server.url, "--data", "progress " * 4000,
                           "--param", "chunk_size=1024"], stdout=subprocess.PIPE, stderr=follower, timeout=60)
    os.close(follower)
    drawn = b""
    while True:
        try:
            piece = os.read(leader, 1 << 16)
        except OSError:
            break
        if not piece:
            break
        drawn += piece
    os.close(leader)
    assert done.returncode == 0
    assert b"100.0%" in drawn and b"MB/s" in drawn and b"\r[" in drawn


def test_per_event_compression_is_decoded_to_the_same_results_and_features(server):
    client = Client(server.url)
    plain = [e for e in client.stream("stream_chunks", data=BODY[:20480], chunk_size=1024) if e["type"] == "chunk"]
    packed = [e for e in client.stream("stream_chunks", data=BODY[:20480], chunk_size=1024, enable_compression=True)
              if e["type"] == "chunk"]
    assert len(plain) == len(packed) == 20 and all(e["compressed"] for e in packed)
    for p, c in zip(plain, packed, strict=True):
        assert c["result"] == p["result"] and "data" not in c
        np.testing.assert_array_equal(c["features"], p["features"])
        assert c["features"].shape[0] == 16  # 1024 bytes of 64-byte frames
