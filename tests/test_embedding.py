"""The kit embedded: the Flask extension in a host app, two apps side by side in one process,
`dtesn.events` in a plain gevent program, and the examples run as users run them."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time

import gevent
import pytest
import requests
from flask import Flask

import dtesn
from dtesn import DTESN, Settings, SettingsError, create_app
from dtesn.web import kit
from tests.support.server import ROOT, Server
from tests.support.sse import events as sse_events
from tests.support.sse import parse

HEAVY = bytes(range(256)) * 4096 * 2  # 2 MB: about a second at esn 4096 on one thread


def _host() -> Flask:
    app = Flask("host")
    app.json.sort_keys = True

    @app.get("/")
    def home():
        return {"app": "host", "b": 2, "a": 1}

    @app.errorhandler(404)
    def not_found(_exc):
        return "<h1>host 404</h1>", 404

    return app


def test_host_app_keeps_its_routes_errors_and_json():
    app = _host()
    ext = DTESN(url_prefix="/dtesn")
    ext.init_app(app)
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == '{"a":1,"app":"host","b":2}\n'
    missing = client.get("/elsewhere")
    assert missing.status_code == 404 and missing.get_data(as_text=True) == "<h1>host 404</h1>"
    assert client.get("/deep_tree_echo/status").status_code == 404  # only under its own prefix
    kit_missing = client.get("/dtesn/nothing-here")
    assert kit_missing.status_code == 404 and kit_missing.get_json()["field"] is None
    wrong_method = client.get("/dtesn/process")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert wrong_method.is_json
    processed = client.post("/dtesn/process", json={"input_data": "hello", "esn_size": 64})
    assert processed.status_code == 200 and processed.headers["X-Request-ID"]
    bad = client.post("/dtesn/process", json={"input_data": "hello", "esn_size": 3})
    assert bad.status_code == 400 and bad.get_json()["field"] == "esn_size"
    index = client.get("/dtesn/").get_json()
    paths = {e["path"] for e in index["endpoints"]}
    assert "/dtesn/stream_chunks" in paths and "/" not in paths
    assert app.config.get("MAX_CONTENT_LENGTH") is None  # the host's config is untouched


def test_settings_in_code_are_checked_at_start_up():
    with pytest.raises(SettingsError, match="unknown setting"):
        DTESN(Flask("x"), no_such_setting=1)
    with pytest.raises(SettingsError, match="max_streams must be at least 1"):
        DTESN(Flask("x"), max_streams=0)
    with pytest.raises(SettingsError, match="heartbeat_interval must be float"):
        DTESN(Flask("x"), heartbeat_interval="fast")
    settings = Settings.load(max_streams=7)
    assert DTESN(Flask("x"), settings=settings, heartbeat_interval=2).settings.heartbeat_interval == 2.0


def _chunk_stream(client, data: bytes):
    return client.post("/deep_tree_echo/stream_chunks?esn_size=4096&membrane_depth=1&chunk_size=8192",
                       data=data, content_type="application/octet-stream", buffered=False)


def test_two_apps_in_one_process_do_not_share_settings_or_state():
    fast = create_app(heartbeat_interval=0.02, max_streams=1)
    roomy = create_app(max_streams=5)
    assert kit(fast).runtime is not kit(roomy).runtime
    assert kit(fast).runtime.weights is not kit(roomy).runtime.weights

    # Stream limits: one open stream fills `fast`, not `roomy`.
    held = _chunk_stream(fast.test_client(), b"x" * 1000)
    try:
        assert _chunk_stream(fast.test_client(), b"x" * 1000).status_code == 503
        second = _chunk_stream(roomy.test_client(), b"x" * 1000)
        assert second.status_code == 200
        second.close()
    finally:
        held.close()
    assert kit(fast).runtime.metrics.active_streams == 0

    # Heartbeat intervals: a heavy stream on each, side by side.
    counts = {}
    for name, app in (("fast", fast), ("roomy", roomy)):
        response = _chunk_stream(app.test_client(), HEAVY)
        kinds = [e.type for e in parse(response.response)]
        response.close()
        assert kinds[0] == "metadata" and kinds[-1] == "completion"
        counts[name] = kinds.count("heartbeat")
    assert counts["fast"] >= 5
    assert counts["roomy"] <= 1  # at most the one before processing starts (a large input)


def test_events_iterator_matches_the_http_stream(server):
    data = b"the same input through HTTP and through dtesn.events " * 400
    fields = {"esn_size": 256, "membrane_depth": 4, "chunk_size": 1024}
    local = list(dtesn.events(data, **fields))
    assert [e["type"] for e in local][0] == "metadata" and local[-1]["type"] == "completion"
    assert sum(e["type"] == "chunk" for e in local) == -(-len(data) // 1024)
    with requests.post(f"{server.url}/deep_tree_echo/stream_chunks", params=fields, data=data, stream=True,
                       headers={"Content-Type": "application/octet-stream"}, timeout=60) as response:
        remote = [e.json for e in sse_events(response)]
    assert local[-1]["final_digest"] == remote[-1]["final_digest"]
    assert [e["result"]["digest"] for e in local if e["type"] == "chunk"] == \
        [e["result"]["digest"] for e in remote if e["type"] == "chunk"]


def test_events_accepts_an_iterable_of_bytes_and_reports_bad_fields():
    whole = b"abcdefgh" * 3000
    blocks = (whole[i : i + 777] for i in range(0, len(whole), 777))
    digests = [list(dtesn.events(source, esn_size=64))[-1]["final_digest"] for source in (whole, blocks)]
    assert digests[0] == digests[1]
    with pytest.raises(dtesn.engine.ParameterError):
        list(dtesn.events(whole, esn_size=3))


def test_a_stream_left_early_is_freed_without_the_cycle_collector():
    """A stream whose reader leaves is freed as it ends: kept in a reference cycle (a killed
    greenlet's traceback holding its pump), 300 of them made 20-46 ms full collections on a
    worker's event loop."""
    from dtesn.streaming.pump import Pump

    runtime = dtesn.Runtime.create(Settings.load(), datasets=False)
    gc.collect()
    gc.disable()
    try:
        stream = dtesn.events(bytes(range(256)) * 4000, esn_size=256, runtime=runtime)
        assert next(e for e in stream if e["type"] == "chunk")["chunk_index"] == 0
        stream.close()  # the reader leaves while the stream still computes
        gevent.sleep(0)  # the kill's own callback lets go of the producer
        assert not [o for o in gc.get_objects() if isinstance(o, Pump)]
    finally:
        gc.enable()
        runtime.close()


def test_gevent_program_example_keeps_its_ticker_running(server):
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "gevent_program.py"), "4"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["events"]["completion"] == 1
    assert summary["ticker_worst_late_ms"] < 50, summary
    data = bytes(range(256)) * int(4 * 4096)
    with requests.post(f"{server.url}/deep_tree_echo/stream_chunks", data=data, stream=True,
                       params={"esn_size": 4096, "membrane_depth": 1, "chunk_size": 8192},
                       headers={"Content-Type": "application/octet-stream"}, timeout=120) as response:
        remote = [e.json for e in sse_events(response)]
    assert summary["final_digest"] == remote[-1]["final_digest"]


def test_host_app_example_streams_under_gunicorn(tmp_path):
    srv = Server(tmp_path, command=["gunicorn", "-k", "gevent", "--workers", "1", "examples.host_app:app"],
                 ready_path="/")
    try:
        assert requests.get(srv.url + "/", timeout=5).json() == {"app": "host", "streams_at": "/dtesn"}
        assert requests.get(srv.url + "/nope", timeout=5).text == "<h1>host page not found</h1>"
        started = time.monotonic()
        with requests.post(f"{srv.url}/dtesn/stream_chunks", data=b"hello " * 5000, stream=True,
                           params={"esn_size": 128}, headers={"Content-Type": "application/octet-stream"},
                           timeout=60) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            kinds = [e.type for e in sse_events(response)]
        assert kinds[0] == "metadata" and kinds[-1] == "completion"
        assert time.monotonic() - started < 60
    finally:
        srv.stop()


def test_a_plain_pip_install_carries_its_defaults(tmp_path):
    """`pip install .` (not editable): the package reads config/ and the console's page from
    inside itself, and installs the `dtesn-stream` script."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    check = ("import dtesn.settings as s, dtesn.streaming.bandwidth as b; from dtesn import create_app; "
             "c = create_app().test_client(); "
             "print(s.DEFAULTS_FILE, b.POLICIES_FILE, c.post('/deep_tree_echo/process', json={'input_data': 'hi'}).status_code, "
             "c.get('/').status_code, len(c.get('/').data) > 1000)")
    run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    defaults, policies, status, console, page = run.stdout.split()
    assert defaults.startswith(str(target)) and policies.startswith(str(target)) and status == "200"
    assert console == "200" and page == "True"  # the console's page ships inside the package
    assert (target / "bin" / "dtesn-stream").exists()  # the CLI's console script
