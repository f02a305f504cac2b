"""Datasets: upload once, stream with a plain GET, from Python and from a real EventSource."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from dtesn.storage.datasets import DatasetNotFound, DiskDatasetStore
from dtesn.storage.errors import StoreFull
from tests.support.sse import events

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "tests" / "js"
DATA = bytes(range(256)) * 160  # 40 KB
PARAMS = "esn_size=1024&membrane_depth=4&frame_size=8"
STREAMS = {
    "stream_process": "",
    "stream_chunks": "&chunk_size=1024",
    "stream_large_dataset": "&max_chunk_size=1024",
    "stream_optimized": "&bandwidth_hint=auto&enable_progressive_rendering=true",
}


def upload(server, data: bytes = DATA, **kwargs) -> requests.Response:
    return requests.post(server.url + "/deep_tree_echo/datasets", data=data, timeout=30,
                         headers={"Content-Type": "application/octet-stream"}, **kwargs)


def test_upload_describe_delete(server):
    r = upload(server)
    assert r.status_code == 201
    body = r.json()
    assert body["bytes"] == len(DATA) and body["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert len(body["dataset_id"]) == 32 and body["expires_at"].endswith("Z")
    where = server.url + r.headers["Location"]
    assert requests.get(where, timeout=5).json() == body
    assert requests.delete(where, timeout=5).status_code == 204
    for r in (requests.get(where, timeout=5), requests.delete(where, timeout=5)):
        assert r.status_code == 404 and r.json()["field"] == "dataset_id"


def test_ids_are_unguessable_and_bad_ids_are_not_found(server):
    ids = {upload(server, b"x").json()["dataset_id"] for _ in range(5)}
    assert len(ids) == 5
    for bad in ("nope", "../../etc/passwd", "%2e%2e%2fconfig", "a" * 32):
        r = requests.get(f"{server.url}/deep_tree_echo/datasets/{bad}", timeout=5)
        assert r.status_code == 404, bad


@pytest.mark.parametrize("kwargs, status", [
    ({"data": b"", "headers": {"Content-Type": "application/octet-stream"}}, 400),
    ({"data": b"abc"}, 415),
    ({"json": {"input_data": "x"}}, 415),
])
def test_bad_uploads(server, kwargs, status):
    r = requests.post(server.url + "/deep_tree_echo/datasets", timeout=10, **kwargs)
    assert r.status_code == status and "error" in r.json()


def test_size_limit_with_and_without_content_length(start_server, tmp_path):
    small = start_server(DTESN_DATASET_MAX_BYTES="1000", DTESN_DATASET_DIR=str(tmp_path))
    assert upload(small, bytes(1001)).status_code == 413
    chunked = upload(small, iter([bytes(600), bytes(600)]))  # no Content-Length: refused while reading
    assert chunked.status_code == 413
    assert upload(small, iter([bytes(600), bytes(400)])).status_code == 201
    assert [p.name for p in tmp_path.glob(".*")] == [".lock"]  # no partial file left behind
    assert len(list(tmp_path.iterdir())) == 3  # the one dataset, its description, the lock


@pytest.mark.parametrize("stream", STREAMS)
def test_every_stream_takes_dataset_id_on_get_with_the_same_results(server, stream):
    dataset_id = upload(server).json()["dataset_id"]
    base = f"{server.url}/deep_tree_echo/{stream}?{PARAMS}{STREAMS[stream]}"
    posted = list(events(requests.post(base, data=DATA, stream=True, timeout=60,
                                       headers={"Content-Type": "application/octet-stream"})))
    got = list(events(requests.get(f"{base}&dataset_id={dataset_id}", stream=True, timeout=60)))
    assert got[-1].json["final_digest"] == posted[-1].json["final_digest"]
    assert len(got) == len(posted)


def test_dataset_id_refusals(server):
    base = f"{server.url}/deep_tree_echo/stream_chunks"
    missing = requests.get(base + "?dataset_id=" + "b" * 32, timeout=5)
    assert missing.status_code == 404 and missing.json()["field"] == "dataset_id"
    dataset_id = upload(server).json()["dataset_id"]
    both = requests.get(f"{base}?dataset_id={dataset_id}&input_data=x", timeout=5)
    assert both.status_code == 400


def test_expired_datasets_are_gone(start_server):
    srv = start_server(DTESN_DATASET_TTL="1")
    dataset_id = upload(srv).json()["dataset_id"]
    time.sleep(1.2)
    assert requests.get(f"{srv.url}/deep_tree_echo/datasets/{dataset_id}", timeout=5).status_code == 404
    assert requests.get(f"{srv.url}/deep_tree_echo/stream_chunks?dataset_id={dataset_id}", timeout=5).status_code == 404


def test_the_store_removes_expired_files_and_refuses_past_its_total(tmp_path):
    now = [1000.0]
    store = DiskDatasetStore(tmp_path, max_bytes=100, max_total_bytes=150, ttl_s=10, clock=lambda: now[0])
    first = store.create(io.BytesIO(bytes(100)), 100)
    with pytest.raises(StoreFull):
        store.create(io.BytesIO(bytes(100)), 100)
    now[0] += 11
    assert store.purge(force=True) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]
    with pytest.raises(DatasetNotFound):
        store.get(first.dataset_id)
    store.create(io.BytesIO(bytes(100)), 100)


@pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "eventsource").exists(),
                    reason="needs node and `npm ci --prefix tests/js`")
def test_a_browser_eventsource_streams_by_get_survives_a_deploy_and_stops_after_completion(start_server, tmp_path):
    """EventSource (the `eventsource` package) on a GET with dataset_id; the server restarts
    mid-stream on the same port; the client resumes by itself and ends at the 204."""
    env = {"DTESN_DATASET_DIR": str(tmp_path / "datasets")}
    first = start_server(**env)
    body = DATA * 16  # about a second of compute: SIGTERM lands while it streams
    dataset_id = upload(first, body).json()["dataset_id"]
    url = f"{first.url}/deep_tree_echo/stream_chunks?{PARAMS}&chunk_size=1024&dataset_id={dataset_id}"
    node = subprocess.Popen(["node", str(JS / "eventsource_client.mjs"), url], stdout=subprocess.PIPE, text=True)
    lines, second = [], None
    try:
        for line in node.stdout:
            lines.append(json.loads(line))
            if second is None and isinstance(lines[-1], dict) and lines[-1]["id"].endswith(":3"):
                first.process.send_signal(signal.SIGTERM)
                first.process.wait(timeout=20)
                second = start_server(port=first.port, **env)
        node.wait(timeout=30)
    finally:
        node.kill()
    assert lines[-1] == "closed" and "reconnecting" in lines
    messages = [m for m in lines if isinstance(m, dict)]
    error = next(m["data"] for m in messages if m["data"]["type"] == "error")
    assert error["recoverable"] and error["resume_from"]
    chunk_ids = [int(m["id"].rsplit(":", 1)[1]) for m in messages if m["data"]["type"] == "chunk"]
    assert chunk_ids == list(range(len(chunk_ids))) == list(range(len(body) // 1024))
    reference = list(events(requests.post(f"{second.url}/deep_tree_echo/stream_chunks?{PARAMS}&chunk_size=1024",
                                          data=body, stream=True, timeout=60,
                                          headers={"Content-Type": "application/octet-stream"})))
    assert messages[-1]["data"]["final_digest"] == reference[-1].json["final_digest"]
    assert "status=204" in second.log()
