"""Clients that misbehave and bodies that lie: a clear 4xx before the stream, or a clear error
event in it; nothing partial stored or served; the server keeps answering."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tests.support.raw_http import post_head, raw_request, status_and_json
from tests.support.sse import parse


@pytest.fixture(scope="module")
def strict(start_server, tmp_path_factory):
    """A server with a 1 s body timeout and a dataset directory of its own."""
    directory = tmp_path_factory.mktemp("datasets")
    srv = start_server(DTESN_BODY_TIMEOUT="1", DTESN_DATASET_DIR=str(directory))
    srv.dataset_dir = directory
    return srv


def stored(srv) -> list[str]:
    return sorted(p.name for p in srv.dataset_dir.iterdir() if p.name != ".lock")


@pytest.mark.parametrize("path", ["/deep_tree_echo/datasets", "/deep_tree_echo/process"])
def test_a_body_shorter_than_its_content_length_is_a_400_and_nothing_is_stored(strict, path):
    before = stored(strict)
    reply = raw_request(strict.port, post_head(path, Content_Length="100000"), b"a" * 5000)
    status, body = status_and_json(reply)
    assert status == 400 and "ended after 5000 of its 100000 bytes" in body["error"]
    assert stored(strict) == before


@pytest.mark.parametrize("chunks, message", [
    (b"5\r\nhello\r\n", "without its last"),  # no terminating chunk, then a half-close
    (b"zz\r\nhello\r\n0\r\n\r\n", "malformed chunked"),
    (b"5;\x01=\r\nhello\r\n0\r\n\r\n", "malformed chunked"),
    (b"3\r\nhello\r\n0\r\n\r\n", "malformed chunked"),  # the size does not match the data
])
@pytest.mark.parametrize("path", ["/deep_tree_echo/datasets", "/deep_tree_echo/process"])
def test_a_broken_chunked_body_is_a_400_and_nothing_is_stored(strict, path, chunks, message):
    before = stored(strict)
    status, body = status_and_json(raw_request(strict.port, post_head(path, Transfer_Encoding="chunked"), chunks))
    assert status == 400 and message in body["error"]
    assert stored(strict) == before


def test_a_stream_whose_body_is_cut_short_ends_with_a_fatal_error_and_no_completion(strict):
    reply = raw_request(strict.port, post_head("/deep_tree_echo/stream_chunks", Content_Length="100000"), b"a" * 5000)
    events = list(parse([reply.partition(b"\r\n\r\n")[2]]))
    kinds = [ev.type for ev in events if ev.data.startswith("{")]
    assert "completion" not in kinds
    error = [ev for ev in events if ev.data.startswith("{") and ev.type == "error"][-1]
    assert error.json["recoverable"] is False and "ended after 5000" in error.json["error"]


def test_a_stalled_body_gets_a_408_and_frees_its_connection(strict):
    started = time.monotonic()
    reply = raw_request(strict.port, post_head("/deep_tree_echo/datasets", Content_Length="1000000"), b"ab",
                        half_close=False)
    status, body = status_and_json(reply)
    assert status == 408 and "no byte for 1 s" in body["error"]
    assert time.monotonic() - started < 5, "the connection stayed open after the answer"
    assert stored(strict) == []


def test_a_stream_whose_body_stalls_gets_a_recoverable_error_it_can_resume_from(strict):
    with socket.create_connection(("127.0.0.1", strict.port)) as conn:
        head = post_head("/deep_tree_echo/stream_chunks?chunk_size=1024", Content_Length="1000000")
        conn.sendall(head.encode() + b"\r\n\r\n" + bytes(range(256)) * 40)
        conn.settimeout(10)
        out = b""
        while b'"type":"error"' not in out:
            data = conn.recv(65536)
            assert data, out[-500:]
            out += data
    *before, error = [ev for ev in parse([out.partition(b"\r\n\r\n")[2] + b"\n\n"]) if ev.data.startswith("{")]
    assert error.json["type"] == "error" and error.json["recoverable"] is True
    last_id = [ev.id for ev in before if ev.id][-1]  # resume after what the client has: nothing is lost
    assert error.json["resume_from"] == error.id == last_id
    assert error.retry == error.json["retry_after_ms"] > 0


def test_health_answers_while_300_bodies_stall(strict):
    sockets = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", strict.port))
            s.sendall((post_head("/deep_tree_echo/process", Content_Length="1000000") + "\r\n\r\nab").encode())
            sockets.append(s)
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(strict.url + "/health", timeout=5).status_code == 200
            assert time.monotonic() - started < 1
            time.sleep(0.3)
        time.sleep(1.5)  # past the body timeout: every stalled upload has been answered and closed
        answered = 0
        for s in sockets:
            s.settimeout(2)
            answered += s.recv(100).startswith(b"HTTP/1.1 408")
        assert answered == 300
    finally:
        for s in sockets:
            s.close()


@pytest.mark.parametrize("body, field", [
    (b'{"input_data": "x", "esn_size": 256, "esn_size": 512}', "esn_size"),
    (b'{"input_data": "\\ud800"}', "input_data"),
    (b'{"input_data": ' + b"[" * 2000 + b"]" * 2000 + b"}", None),
    (b"[" * 100000 + b"]" * 100000, None),
])
def test_bad_json_is_a_400_that_names_what_is_wrong(strict, body, field):
    for path in ("/deep_tree_echo/process", "/deep_tree_echo/stream_chunks"):
        r = requests.post(strict.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["field"] == field


@pytest.mark.parametrize("value", ["٢٥٦", "2_56", " 256x", "0x100"])
def test_numbers_in_the_query_are_ascii_digits(strict, value):
    r = requests.get(strict.url + "/deep_tree_echo/stream_chunks", params={"input_data": "x", "esn_size": value},
                     timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "esn_size"


def test_a_compressed_request_body_is_refused(strict):
    for path in ("/deep_tree_echo/process", "/deep_tree_echo/datasets", "/deep_tree_echo/stream_chunks"):
        r = requests.post(strict.url + path, data=b"\x1f\x8b\x08\x00", timeout=10,
                          headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        assert r.status_code == 415 and "Content-Encoding" in r.json()["error"]


def test_a_json_body_over_its_limit_is_refused_by_content_length_before_it_is_read(strict):
    reply = raw_request(strict.port, post_head("/deep_tree_echo/process", "application/json",
                                               Content_Length=str(100 * 1024 * 1024)), b'{"input_data": "', timeout=5)
    status, body = status_and_json(reply)
    assert status == 413 and "raw body" in body["error"]


def test_the_server_still_streams_after_all_of_the_above(strict):
    r = requests.post(strict.url + "/deep_tree_echo/stream_chunks", data=b"fine", timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and '"type":"completion"' in r.text


def test_api_keys_guard_every_kit_route_and_never_reach_the_log(start_server):
    srv = start_server(DTESN_API_KEYS="first-key-123, second-key-456")
    stream = srv.url + "/deep_tree_echo/stream_chunks"
    refused = requests.get(stream, params={"input_data": "x"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/json"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(stream, params={"input_data": "x"}, headers={"Authorization": "Bearer wrong"},
                        timeout=10).status_code == 401
    with_header = requests.get(stream, params={"input_data": "x"}, timeout=10,
                               headers={"Authorization": "Bearer second-key-456"})
    assert with_header.status_code == 200 and '"type":"completion"' in with_header.text
    with_query = requests.get(stream, params={"input_data": "x", "access_token": "first-key-123"}, timeout=10)
    assert with_query.status_code == 200 and '"type":"completion"' in with_query.text
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200
    assert "first-key-123" not in srv.log() and "second-key-456" not in srv.log()


def test_frozen_readers_lose_their_streams_and_free_their_slots(start_server):
    """Three clients that never read hold every slot of a worker limited to three streams;
    the send timeout (1 s) closes them, and a new stream is served again."""
    srv = start_server(DTESN_SEND_TIMEOUT="1", DTESN_MAX_STREAMS="3")
    heavy = "/deep_tree_echo/stream_chunks?esn_size=4096&membrane_depth=8&frame_size=1&chunk_size=8192"
    frozen = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", srv.port))
            s.sendall((post_head(heavy, Content_Length=str(1 << 18)) + "\r\n\r\n").encode() + bytes(1 << 18))
            frozen.append(s)
        time.sleep(0.5)
        assert requests.get(srv.url + "/deep_tree_echo/stream_chunks", params={"input_data": "x"},
                            timeout=10).status_code == 503
        deadline = time.monotonic() + 15
        while requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"] == 0
        r = requests.get(srv.url + "/deep_tree_echo/stream_chunks", params={"input_data": "x"}, timeout=10)
        assert r.status_code == 200 and '"type":"completion"' in r.text
    finally:
        for s in frozen:
            s.close()
    assert "Traceback" not in srv.log(), srv.log()[-4000:]


def test_dropped_streams_write_one_log_line_each_and_no_traceback(start_server):
    srv = start_server()
    body = bytes(range(256)) * 4096
    for i in range(12):
        c = socket.create_connection(("127.0.0.1", srv.port))
        c.sendall((post_head("/deep_tree_echo/stream_chunks?esn_size=1024&frame_size=4",
                             Content_Length=str(len(body))) + "\r\n\r\n").encode())
        c.sendall(body[: (i % 2) * 500_000 + 1000])  # gone mid-upload, or after more of it
        c.recv(1000)
        if i % 3 == 0:  # some leave with a reset
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    deadline = time.monotonic() + 10
    while requests.get(srv.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    log = srv.log()
    assert "Traceback" not in log
    assert log.count("path=/deep_tree_echo/stream_chunks") == 12


def upload(srv, data, **headers):
    return requests.post(srv.url + "/deep_tree_echo/datasets", data=data, timeout=30,
                         headers={"Content-Type": "application/octet-stream", **headers})


def test_the_dataset_store_cap_holds_under_concurrent_uploads(start_server, tmp_path):
    """Six 4 MB uploads at once into a 10 MB store: at most two are stored (before: all six)."""
    srv = start_server(DTESN_DATASET_DIR=str(tmp_path), DTESN_DATASET_STORE_MAX_BYTES=str(10 << 20), WEB_CONCURRENCY="2")
    body = bytes(range(256)) * (4 << 12)  # 4 MiB
    results: list[int] = []

    def send(chunked: bool) -> None:
        data = iter([body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)]) if chunked else body
        results.append(upload(srv, data).status_code)

    threads = [threading.Thread(target=send, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) <= [201, 507] and 1 <= results.count(201) <= 2
    stored_bytes = sum(p.stat().st_size for p in tmp_path.iterdir() if not p.name.startswith(".") and "." not in p.name)
    assert stored_bytes <= 10 << 20
    assert [p.name for p in tmp_path.glob(".*")] == [".lock"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only): a disk that fills up, and can be made read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    import subprocess

    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_507_a_read_only_one_a_503_and_nothing_stays(start_server, tiny_disk):
    import subprocess

    srv = start_server(DTESN_DATASET_DIR=str(tiny_disk))
    full = upload(srv, bytes(3 << 20))
    assert full.status_code == 507 and full.json()["error"]
    assert [p.name for p in tiny_disk.iterdir()] == [".lock"]
    assert upload(srv, b"fits").status_code == 201, "a failed upload broke later ones"
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    read_only = upload(srv, b"anything")
    assert read_only.status_code == 503 and "cannot be written" in read_only.json()["error"]
    assert read_only.headers["Retry-After"]


def test_leftovers_of_a_killed_worker_are_swept_at_start(start_server, tmp_path):
    dead_pid = 2**22 + 17  # above Linux's pid_max default: never alive
    leftovers = [tmp_path / f".{'a' * 32}.{dead_pid}.part", tmp_path / f".{'b' * 32}.{dead_pid}.reserve"]
    for path in leftovers:
        path.write_bytes(b"123")
    start_server(DTESN_DATASET_DIR=str(tmp_path))
    assert not any(path.exists() for path in leftovers)


def test_a_dataset_directory_that_cannot_be_made_stops_start_up_with_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.conf.py", "app:app"],
                          cwd=root, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DTESN_DATASET_DIR": str(blocker / "datasets"),
                               "DTESN_BIND": "127.0.0.1:0"})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "DTESN_DATASET_DIR" in lines[-1] and "Traceback" not in done.stderr


def test_a_half_closed_complete_request_gets_its_whole_stream(strict):
    """shutdown(SHUT_WR) after the whole body: the client still reads, so the stream goes on
    to its completion (before: it ended after the metadata)."""
    body = bytes(range(256)) * 64
    reply = raw_request(strict.port, post_head("/deep_tree_echo/stream_chunks?chunk_size=1024&frame_size=4",
                                               Content_Length=str(len(body))), body, half_close=True)
    events = [ev for ev in parse([reply.partition(b"\r\n\r\n")[2]]) if ev.data.startswith("{")]
    assert events[-1].type == "completion" and events[-1].json["bytes_processed"] == len(body)
    assert len([ev for ev in events if ev.type == "chunk"]) == 16


def test_two_hundred_streams_dropped_at_once_are_gone_promptly(start_server):
    """Half left mid-upload, half after their whole body: all leave /status and stop computing
    within about a second (measured 0.10-0.14 s by bench/drops.py; before: 2.2-3.4 s)."""
    srv = start_server(DTESN_MAX_STREAMS="250", DTESN_WORKER_CONNECTIONS="300")
    body = bytes(range(256)) * 1024
    path = "/deep_tree_echo/stream_chunks?esn_size=256&membrane_depth=2&frame_size=1&chunk_size=8192"
    sockets = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall((post_head(path, Content_Length=str(len(body))) + "\r\n\r\n").encode() + body[: len(body) // (1 + i % 2)])
        sockets.append(s)
    status = srv.url + "/deep_tree_echo/status"
    deadline = time.monotonic() + 10
    while requests.get(status, timeout=5).json()["active_streams"] < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    left = time.monotonic()
    for s in sockets:
        s.close()
    while (now := requests.get(status, timeout=5).json())["active_streams"] or now["compute_tasks"]:
        assert time.monotonic() - left < 1.5, {k: now[k] for k in ("active_streams", "compute_tasks")}
        time.sleep(0.02)


def test_a_body_read_partly_with_its_headers_then_from_the_socket_is_whole_and_the_next_request_is_answered(server):
    """The kit reads a Content-Length body from the socket itself once gunicorn's buffers are
    read (body.py): the bytes that came with the headers come first, nothing is lost or
    doubled, and a request pipelined right behind the body is not taken for part of it."""
    import hashlib
    import random

    data = random.Random(5).randbytes(300_000)
    head = post_head("/deep_tree_echo/datasets", Content_Length=str(len(data))) + "\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(head.encode() + data[:3000])
        time.sleep(0.2)  # the server reads the head and what came with it, then waits for the rest
        conn.sendall(data[3000:] + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        conn.settimeout(15)
        reply = b""
        while piece := conn.recv(65536):
            reply += piece
    first, _, rest = reply.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in first.split(b"\r\n") if line.lower().startswith(b"content-length")))
    uploaded, second = json.loads(rest[:length]), rest[length:]
    assert first.startswith(b"HTTP/1.1 201")
    assert uploaded["bytes"] == len(data) and uploaded["sha256"] == hashlib.sha256(data).hexdigest()
    assert second.startswith(b"HTTP/1.1 200")
    requests.delete(f"{server.url}/deep_tree_echo/datasets/{uploaded['dataset_id']}", timeout=5)


@pytest.mark.parametrize("endpoint", ["stream_process", "stream_chunks", "stream_large_dataset", "stream_optimized"])
def test_a_half_duplex_client_sending_100_mb_before_reading_gets_its_whole_stream(server, endpoint):
    """http.client sends the whole body, then reads: before, output that outgrew the socket
    buffers deadlocked both sides (stream_chunks at 8 MB of body)."""
    import http.client

    size = 100 * 1024 * 1024
    piece = bytes(range(256)) * 4096
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.putrequest("POST", f"/deep_tree_echo/{endpoint}?esn_size=32&membrane_depth=1&frame_size=64")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.putheader("Accept-Encoding", "identity")
    conn.endheaders()
    for _ in range(size // len(piece)):
        conn.send(piece)
    response = conn.getresponse()
    last = b""
    while data := response.read(1 << 20):
        last = (last + data)[-20000:]
    conn.close()
    assert response.status == 200
    assert b"completion" in last and f'"bytes_processed":{size}'.encode() in last or f'"total_bytes":{size}'.encode() in last


@pytest.mark.parametrize("head, status", [
    ("GET /" + "a" * 5000 + " HTTP/1.1\r\nHost: x", 414),
    ("GET / HTTP/1.1\r\nHost: x\r\n" + "\r\n".join(f"X-H{i}: v" for i in range(150)), 431),
    ("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "v" * 9000, 431),
    ("GARBAGE\r\nHost: x", 400),
])
def test_requests_gunicorn_cannot_parse_get_json_errors_too(strict, head, status):
    got_status, body = status_and_json(raw_request(strict.port, head))
    assert got_status == status and body["field"] is None and body["error"]
