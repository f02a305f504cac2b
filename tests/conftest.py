"""Fixtures: a Flask app for quick checks, and the real gunicorn+gevent server for streams.

The server is started exactly as the Procfile does (`gunicorn -c config/gunicorn.conf.py
app:app`), on 127.0.0.1 and a free port, and stopped by its PID.
"""

from __future__ import annotations

import pytest

from dtesn.settings import Settings
from dtesn.web import create_app
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
