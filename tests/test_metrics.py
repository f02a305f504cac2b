"""GET /metrics in Prometheus text format, per app in one process and added up across
gunicorn workers (multiprocess mode: its directory wiped at start, dead workers' live
gauges dropped), and /status naming the stores in use."""

from __future__ import annotations

import os
import signal
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from dtesn.settings import Settings
from dtesn.web import create_app
from tests.support.server import Server
from tests.support.sse import events

DOCUMENTED = {"dtesn_active_streams", "dtesn_streams", "dtesn_resumes", "dtesn_input_bytes", "dtesn_wire_bytes",
              "dtesn_time_to_first_event_seconds", "dtesn_heartbeat_gap_seconds", "dtesn_engine_steps",
              "dtesn_http_responses"}


def samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_each_app_counts_its_own_streams_and_resumes():
    one, other = create_app(Settings.load()), create_app(Settings.load())
    client = one.test_client()
    body = b"m" * 4096
    streamed = client.post("/deep_tree_echo/stream_chunks?chunk_size=1024", data=body,
                           headers={"Content-Type": "application/octet-stream"})
    assert streamed.status_code == 200 and b"completion" in streamed.data
    assert client.post("/deep_tree_echo/stream_chunks", data=body, headers={"Last-Event-ID": "x1:done",
                       "Content-Type": "application/octet-stream"}).status_code == 204
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    families = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert DOCUMENTED <= families
    got = samples(response.get_data(as_text=True))
    assert got[("dtesn_streams_total", (("endpoint", "stream_chunks"), ("outcome", "completed")))] == 1
    assert got[("dtesn_resumes_total", (("result", "complete"),))] == 1
    assert got[("dtesn_input_bytes_total", ())] == len(body)
    assert got[("dtesn_engine_steps_total", ())] == len(body) // 64
    theirs = samples(other.test_client().get("/metrics").get_data(as_text=True))
    assert theirs[("dtesn_input_bytes_total", ())] == 0  # another app's runtime counts apart


def test_status_names_the_embedded_stores(client):
    assert client.get("/deep_tree_echo/status").json["stores"] == {
        "checkpoints": "memory", "fingerprints": "memory", "datasets": "disk"}


def test_under_gunicorn_every_worker_is_counted_and_a_dead_one_stops_counting(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale values of an earlier run")
    srv = Server(tmp_path, {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    try:
        assert not (directory / "counter_999999.db").exists()
        pids = srv.worker_pids()
        deadline = time.monotonic() + 10
        while {f"counter_{pid}.db" for pid in pids} - {p.name for p in directory.iterdir()}:
            assert time.monotonic() < deadline, "every worker writes its own values"
            time.sleep(0.05)
        slow = requests.post(f"{srv.url}/deep_tree_echo/stream_chunks?chunk_size=1024&esn_size=2048", data=b"s" * 65536,
                             stream=True, timeout=60, headers={"Content-Type": "application/octet-stream"})
        next(events(slow))
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert samples(text)[("dtesn_active_streams", ())] == 1
        victim = next(pid for pid in pids if (directory / f"gauge_livesum_{pid}.db").exists())
        os.kill(victim, signal.SIGKILL)  # whichever holds the stream or not: its live gauge goes with it
        deadline = time.monotonic() + 10
        while (directory / f"gauge_livesum_{victim}.db").exists():
            assert time.monotonic() < deadline, "child_exit marks the dead worker"
            time.sleep(0.05)
        slow.close()
        deadline = time.monotonic() + 20
        while len(set(srv.worker_pids()) - {victim}) < 2 or len(list(directory.glob("counter_*.db"))) < 3:
            assert time.monotonic() < deadline, "the master starts a new worker, which counts from zero"
            time.sleep(0.05)
        assert samples(requests.get(srv.url + "/metrics", timeout=10).text)[("dtesn_http_responses_total",
                                                                            (("code_class", "2xx"),))] >= 1
    finally:
        srv.stop()
