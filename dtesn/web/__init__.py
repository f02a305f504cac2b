"""The web layer: the Flask extension (`DTESN`), and the standalone app built on it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from ..runtime.connections import IdleConnections
from ..settings import Settings
from .api import health_bp
from .console import bp as console_bp
from .errors import handle
from .extension import DTESN, Kit, kit
from .metrics import bp as metrics_bp
from .request_log import RequestLog, configure_access_log

IDLE_KEY = "dtesn.connections"
__all__ = ["DTESN", "Kit", "create_app", "idle_connections", "kit", "metrics_bp"]


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """The standalone service (what `app:app` serves): the kit at /deep_tree_echo, the
    browser console at /, /health, /metrics, JSON errors everywhere, one log line per request, and idle keep-alive connections
    tracked for the drain."""
    app = Flask(__name__)
    DTESN(app, settings=settings, **overrides)
    app.config["MAX_CONTENT_LENGTH"] = kit(app).settings.max_body_bytes
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(console_bp)
    app.register_error_handler(Exception, handle)
    configure_access_log()
    connections = IdleConnections(app.wsgi_app)
    app.extensions[IDLE_KEY] = connections
    app.wsgi_app = RequestLog(connections, on_finish=kit(app).runtime.metrics.request_finished)  # type: ignore[method-assign]
    return app


def idle_connections(app: Flask) -> IdleConnections | None:
    """The standalone app's idle keep-alive connections (None for a host app's)."""
    return app.extensions.get(IDLE_KEY)
