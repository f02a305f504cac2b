"""Fixtures: a Flask app for quick checks, and the real gunicorn+gevent server for streams.

The server is started exactly as the Procfile does (`gunicorn -c config/gunicorn.conf.py
app:app`), on 127.0.0.1 and a free port, and stopped by its PID.
"""

from __future__ import annotations

import os

import pytest

from dtesn.settings import Settings
from dtesn.web import create_app
from tests.support.redis_server import RedisServer
from tests.support.redis_server import available as redis_available
from tests.support.server import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """Start extra servers with their own environment; all are stopped at the end."""
    started: list[Server] = []

    def start(port: int | None = None, **env: str) -> Server:
        srv = Server(tmp_path_factory.mktemp("server"), env, port)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def app():
    return create_app(Settings.load())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server for the tests that need one: skipped locally when it is not
    installed (`apt-get install redis-server`), never in CI (CI=true), where it is an error."""
    if not redis_available():
        message = "redis-server is not installed: apt-get install redis-server (.ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
