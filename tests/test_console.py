"""The browser console at / in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium with the system driver): a pasted text streams to `done` with the API's
digest, a server restart mid-stream resumes to the same digest, and a page on another origin
works only when that origin is in DTESN_CORS_ORIGINS."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import pytest

from dtesn.client import Client
from tests.support import browser as browser_support
from tests.support.server import free_port

STATIC = Path(__file__).resolve().parents[1] / "dtesn" / "web" / "static"
TEXT = "Deep tree echo state networks stream their states to the browser. " * 60


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not browser_support.available():
        message = "chromium and chromium-driver are not installed: apt-get install chromium chromium-driver (.ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    driver = browser_support.chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def state(browser) -> str:
    return browser.execute_script("return document.body.dataset.state")


def wait_for(browser, *states: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (now := state(browser)) not in states:
        assert time.monotonic() < deadline, f"the page is {now!r}: {browser.find_element('id', 'message').text}"
        time.sleep(0.05)
    return now


def api_digest(server, browser, endpoint: str, **fields) -> str:
    dataset_id = browser.execute_script("return document.body.dataset.datasetId")
    return list(Client(server.url).stream(endpoint, dataset_id=dataset_id, **fields))[-1]["final_digest"]


def test_a_pasted_text_streams_to_done_with_the_apis_digest(server, browser):
    browser.get(server.url + "/")
    wait_for(browser, "idle")
    browser.find_element("id", "endpoint").send_keys("stream_large_dataset")
    browser.find_element("id", "field-esn_size").send_keys("256")
    browser.find_element("id", "extra").send_keys("compression_level=2")
    browser.find_element("id", "text").send_keys(TEXT)
    browser.find_element("id", "start").click()
    wait_for(browser, "done", "error")
    digest = browser.find_element("id", "digest").text
    assert state(browser) == "done" and digest == api_digest(server, browser, "stream_large_dataset", esn_size=256,
                                                               compression_level=2, codecs="gzip,zlib")
    assert "ratio" in browser.find_element("id", "compression").text
    assert len(browser.find_elements("css selector", "#log li")) > 10


def test_the_page_resumes_across_a_server_restart_to_the_same_digest(start_server, browser, tmp_path):
    port, datasets = free_port(), str(tmp_path / "datasets")
    first = start_server(port, DTESN_DATASET_DIR=datasets)
    # 800 chunks of 512 slow steps (~1.4 s on a machine of 2026-12-04; with 200 the stream
    # could end before the SIGTERM came, and the page had nothing to resume)
    dataset_id = Client(first.url).upload(bytes(range(256)) * 4 * 800)
    fields = {"esn_size": 1024, "membrane_depth": 4, "frame_size": 2, "chunk_size": 1024}
    browser.get(f"{first.url}/?{urlencode({'endpoint': 'stream_chunks', 'dataset_id': dataset_id, **fields, 'autostart': 1})}")
    wait_for(browser, "streaming")
    deadline = time.monotonic() + 30
    while len(browser.find_elements("css selector", "#log li")) < 20:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.process.send_signal(signal.SIGTERM)  # a deploy, mid-stream
    first.process.wait(30)
    second = start_server(port, DTESN_DATASET_DIR=datasets)
    assert wait_for(browser, "done", "error", timeout=120) == "done"
    assert int(browser.execute_script("return document.body.dataset.reconnects || 0")) >= 1
    assert "resumed from Last-Event-ID" in browser.find_element("id", "reconnect").text
    assert browser.find_element("id", "digest").text == api_digest(second, browser, "stream_chunks", **fields)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_origin():
    """The console's page, served by another server (another origin) on 127.0.0.1."""
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), partial(_Quiet, directory=str(STATIC)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


def test_a_page_on_another_origin_works_only_when_that_origin_is_allowed(start_server, browser, other_origin):
    allowed, closed = start_server(DTESN_CORS_ORIGINS=other_origin), start_server()
    for api, expected in ((allowed, "done"), (closed, "error")):
        query = urlencode({"api": api.url, "endpoint": "stream_chunks", "text": TEXT, "autostart": 1})
        browser.get(f"{other_origin}/console.html?{query}")
        assert wait_for(browser, "done", "error") == expected, api.url
    assert "cannot reach the API" in browser.find_element("id", "message").text


def test_with_api_keys_the_page_streams_with_its_key_and_not_without(start_server, browser):
    srv = start_server(DTESN_API_KEYS="k1")
    for key, expected in (("k1", "done"), ("", "error")):
        query = urlencode({"endpoint": "stream_chunks", "text": TEXT, "autostart": 1, "access_token": key})
        browser.get(f"{srv.url}/?{query}")
        assert wait_for(browser, "done", "error") == expected, key
