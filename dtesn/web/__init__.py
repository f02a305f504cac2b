"""The Flask app factory and its blueprints."""

from __future__ import annotations

from flask import Flask

from ..engine import weight_cache
from ..settings import Settings, SettingsError
from ..streaming.bandwidth import load_policies
from ..streaming.checkpoints import MemoryCheckpointStore
from ..streaming.datasets import DatasetStore, StoreUnavailable
from ..streaming.fingerprints import FingerprintStore
from .access import parse_keys, require_keys
from .api import bp as api_bp
from .api import health_bp
from .datasets import bp as datasets_bp
from .connections import IdleConnections
from .errors import register_error_handlers
from .metrics import Metrics
from .request_log import RequestLog, configure_access_log
from .streams import bp as streams_bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.load()
    app = Flask(__name__)
    app.config.update(
        DTESN_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.json.compact = True
    weight_cache.maxsize = settings.cache_size
    metrics = Metrics()
    app.extensions["dtesn.metrics"] = metrics
    try:
        app.extensions["dtesn.datasets"] = DatasetStore(
            settings.dataset_path, settings.dataset_max_bytes, settings.dataset_store_max_bytes, settings.dataset_ttl
        )
    except StoreUnavailable as exc:
        raise SettingsError(f"dataset_dir {settings.dataset_path}: {exc} (env DTESN_DATASET_DIR)") from None
    app.extensions["dtesn.policies"] = load_policies()
    app.extensions["dtesn.checkpoints"] = MemoryCheckpointStore(settings.checkpoint_ttl, settings.checkpoint_max_bytes)
    app.extensions["dtesn.fingerprints"] = FingerprintStore()
    register_error_handlers(app)
    require_keys(app, parse_keys(settings.api_keys))
    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(streams_bp)
    app.register_blueprint(datasets_bp)
    configure_access_log()
    connections = IdleConnections(app.wsgi_app)
    app.extensions["dtesn.connections"] = connections
    app.wsgi_app = RequestLog(connections, on_finish=metrics.request_finished)
    return app
