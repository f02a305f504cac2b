"""The real service: gunicorn with the gevent worker, started as the Procfile does."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from dtesn.engine import ReservoirParams, session
from dtesn.settings import Settings, SettingsError
from tests.support.sse import events

ROOT = Path(__file__).resolve().parent.parent


def test_health_and_request_id(server):
    r = requests.get(server.url + "/health", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", r.headers["X-Request-ID"])


def test_process_json_and_raw_bodies(server):
    text = "Deep tree echo " * 100
    r = requests.post(server.url + "/deep_tree_echo/process", json={"input_data": text, "esn_size": 256}, timeout=10)
    assert r.status_code == 200
    expected = session(ReservoirParams(esn_size=256)).feed(text.encode(), final=True)
    assert r.json()["digest"] == expected.digest

    def chunked():  # no Content-Length: requests sends Transfer-Encoding: chunked
        for _ in range(100):
            yield b"Deep tree echo "

    r = requests.post(server.url + "/deep_tree_echo/process?esn_size=256", data=chunked(),
                      headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert r.status_code == 200 and r.json()["digest"] == expected.digest


def test_errors_are_json_from_the_real_server(server):
    r = requests.post(server.url + "/deep_tree_echo/process", data="x", headers={"Content-Type": "image/png"}, timeout=5)
    assert r.status_code == 415 and r.json()["error"]
    r = requests.delete(server.url + "/deep_tree_echo/status", timeout=5)
    assert r.status_code == 405 and "GET" in r.headers["Allow"] and r.json()["error"]


def test_one_log_line_per_request_with_its_id(server):
    r = requests.get(server.url + "/deep_tree_echo/status", timeout=5)
    rid = r.headers["X-Request-ID"]
    deadline = time.monotonic() + 5  # logged when the server closes the response: after the client has it
    while not (lines := [line for line in server.log().splitlines() if f"request_id={rid} " in line]):
        assert time.monotonic() < deadline, "no log line for the request"
        time.sleep(0.02)
    time.sleep(0.1)  # and no second one follows
    lines = [line for line in server.log().splitlines() if f"request_id={rid} " in line]
    assert len(lines) == 1
    assert re.search(r"method=GET path=/deep_tree_echo/status status=200 bytes=\d+ duration_ms=[\d.]+", lines[0])


def test_status_counts_requests_of_the_worker(server):
    before = requests.get(server.url + "/deep_tree_echo/status", timeout=5).json()
    requests.get(server.url + "/health", timeout=5)
    after = requests.get(server.url + "/deep_tree_echo/status", timeout=5).json()
    assert after["worker_pid"] == before["worker_pid"]
    assert after["requests"] >= before["requests"] + 2


def test_runs_the_gevent_worker(server):
    from gunicorn.workers.ggevent import GeventWorker

    from dtesn.worker import JSONErrorsWorker

    assert len(server.worker_pids()) == 1
    assert "Using worker: dtesn.worker.JSONErrorsWorker" in server.log()  # gunicorn names it at boot
    assert issubclass(JSONErrorsWorker, GeventWorker)


def test_invalid_configuration_stops_start_up_with_a_clear_message():
    env = {**os.environ, "DTESN_MAX_BODY_BYTES": "lots", "DTESN_BIND": "127.0.0.1:0"}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    out = subprocess.run([gunicorn, "-c", "config/gunicorn.conf.py", "app:app"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "invalid configuration: DTESN_MAX_BODY_BYTES='lots' is not a valid int" in out.stderr + out.stdout


def test_config_binds_port_for_a_paas_and_uses_one_blas_thread():
    env = {"PORT": "5055"}
    code = (
        "import os, runpy; c = runpy.run_path('config/gunicorn.conf.py');"
        "print(c['bind'], c['workers'], c['worker_class'], c['preload_app'], os.environ['OPENBLAS_NUM_THREADS'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env, "WEB_CONCURRENCY": "3"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.0.0.0:5055", "3", "dtesn.worker.JSONErrorsWorker", "False", "1"]
    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "DTESN_BIND", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "127.0.0.1:8000"


def test_past_max_streams_a_stream_gets_an_immediate_503_and_the_worker_recovers(start_server):
    """Never a silent wait in the accept backlog: the refusal is immediate and says when to retry."""
    srv = start_server(DTESN_MAX_STREAMS="3", DTESN_HEARTBEAT_INTERVAL="0.2")
    slow = srv.url + "/deep_tree_echo/stream_chunks?chunk_size=8192&esn_size=4096&membrane_depth=6&frame_size=1"
    for answered in ("x:done", "bad id"):  # answers other than a stream give their slot back
        r = requests.get(srv.url + "/deep_tree_echo/stream_process?input_data=hi", timeout=5,
                         headers={"Last-Event-ID": answered})
        assert r.status_code in (204, 400)
    assert requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"] == 0
    held = [requests.post(slow, data=bytes(8192 * 50), stream=True, timeout=30,
                          headers={"Content-Type": "application/octet-stream"}) for _ in range(3)]
    for r in held:
        assert next(events(r)).type == "metadata"
    started = time.monotonic()
    refused = requests.get(srv.url + "/deep_tree_echo/stream_process?input_data=hi", timeout=5)
    assert time.monotonic() - started < 1.0
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "maximum number of streams" in refused.json()["error"]
    assert requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["streams_refused"] == 1
    for r in held:
        r.close()
    deadline = time.monotonic() + 5
    while requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ok = requests.get(srv.url + "/deep_tree_echo/stream_process?input_data=hi", timeout=10)
    assert ok.status_code == 200 and "completion" in ok.text


def test_max_streams_must_stay_below_worker_connections():
    with pytest.raises(SettingsError, match="max_streams"):
        Settings.load({"DTESN_MAX_STREAMS": "2000", "DTESN_WORKER_CONNECTIONS": "2000"})


def test_sigterm_ends_idle_keep_alive_connections_so_the_worker_exits_at_once(start_server):
    """A connection idle between requests (a browser's, a load balancer's) used to hold a
    deploy for gunicorn's whole graceful_timeout (25 s)."""
    import signal
    import socket
    import time

    srv = start_server()
    idle = socket.create_connection(("127.0.0.1", srv.port))
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = b""
    while not reply.endswith(b"}\n"):
        reply += idle.recv(1000)
    assert reply.startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    started = time.monotonic()
    srv.process.send_signal(signal.SIGTERM)
    srv.process.wait(timeout=20)
    assert time.monotonic() - started < 5
    assert idle.recv(1000) == b""  # the server closed it
    idle.close()
    assert "Traceback" not in srv.log()


def test_the_worker_reuses_the_buffers_streams_free_instead_of_faulting_in_fresh_pages(start_server):
    """malloc keeps what a stream frees for the next batch (dtesn/runtime/allocator.py, set
    in the master before the fork). Over four 32 MB large-dataset streams uploaded while read,
    the worker faulted in 0.2-54 fresh pages per MB, against a steady 99-103 with glibc's own
    thresholds (DTESN_MALLOC_THRESHOLD_BYTES=0), whose adjusting never settles on this load."""
    from dtesn.client.duplex import DuplexResponse, pattern

    size = 32 << 20
    path = "/deep_tree_echo/stream_large_dataset?esn_size=256&membrane_depth=3&frame_size=1024&max_chunk_size=16384"
    faults = {}
    for threshold in ("33554432", "0"):
        srv = start_server(DTESN_MALLOC_THRESHOLD_BYTES=threshold)
        for k in range(5):  # the first builds weights, rates and the heap; the other four are counted
            before = srv.worker_minor_faults()
            r = DuplexResponse(srv.port, path, pattern(size), size)
            tail = b"".join(r.iter_content())[-2000:]
            r.close()
            assert b"event: completion" in tail
            faults[threshold] = faults.get(threshold, 0) + (srv.worker_minor_faults() - before) * (k > 0)
    assert faults["33554432"] < faults["0"] / 2, faults
