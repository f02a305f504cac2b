"""The kit as a Flask extension: `DTESN(app, **settings)` or `DTESN(**settings).init_app(app)`.

Everything it adds lives under its `url_prefix` (default /deep_tree_echo): its routes, its
JSON errors (handlers on its own blueprint, and routing errors under the prefix answered by
a before-request hook), its API keys, its request ids. The host app's routes, error handlers,
JSON provider and config stay as they were. Each app it is initialised on gets a runtime of
its own (engine threads, caches, stores), reached with `kit()` inside a request.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, request

from ..runtime import Runtime
from ..settings import Settings, SettingsError
from ..storage.errors import StoreUnavailable
from ..streaming.bandwidth import load_policies
from .access import check_key
from .api import bp as api_bp
from .body import after_response
from .cors import CORS
from .datasets import bp as datasets_bp
from .errors import handle, http_error
from .request_log import HEADER, assign_request_id
from .state import BLUEPRINT, EXTENSION_KEY, Kit, kit
from .streams import bp as streams_bp

DEFAULT_PREFIX = "/deep_tree_echo"
#: Set by config/gunicorn.conf.py once the master has checked the stores at start-up: its
#: workers then start whatever Redis does meanwhile (a worker restarted while Redis is down
#: serves, degraded, instead of failing to boot, which would stop the whole server).
STARTUP_CHECKED = "DTESN_STARTUP_CHECKED"


bp = Blueprint(BLUEPRINT, __name__)
bp.register_blueprint(api_bp)
bp.register_blueprint(streams_bp)
bp.register_blueprint(datasets_bp, url_prefix="/datasets")
bp.register_error_handler(Exception, handle)  # the kit's views only: the host's handlers stay its own


@bp.before_app_request
def _under_prefix():
    """What comes before a view under the prefix: a CORS preflight's answer, and the kit's
    refusals (a path that matches no route: the blueprint's own handlers never see routing
    errors; a missing API key)."""
    state = kit()
    if not state.under_prefix(request.path):
        return None
    assign_request_id(request.environ)
    preflight = state.cors.preflight()
    if preflight is not None:
        return preflight
    if request.routing_exception is not None:
        return http_error(request.routing_exception)  # type: ignore[arg-type]
    return check_key(state.api_keys)


@bp.after_app_request
def _settle(response):
    """Under the prefix: the request id on the answer, and a connection whose body failed
    shut once the answer is done (see body.py)."""
    state = kit()
    if state.under_prefix(request.path):
        environ = request.environ
        response.headers.setdefault(HEADER, assign_request_id(environ))
        state.cors.mark(response)
        response.call_on_close(lambda: after_response(environ))
    return response


class DTESN:
    """The extension. Settings come from `settings` (or config/dtesn.toml and the DTESN_*
    environment), with keyword arguments over them; they are checked here, so a bad value
    fails at start-up with one line (SettingsError)."""

    def __init__(self, app: Flask | None = None, *, settings: Settings | None = None,
                 url_prefix: str = DEFAULT_PREFIX, **overrides: Any) -> None:
        self.settings = settings.replace(**overrides) if settings is not None else Settings.load(**overrides)
        prefix = "/" + url_prefix.strip("/")
        if prefix == "/":
            raise SettingsError("url_prefix must name a path, e.g. /deep_tree_echo")
        self.url_prefix = prefix
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Kit:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("dtesn is already set up on this app")
        settings = self.settings
        try:
            runtime = Runtime.create(settings, check_redis=os.environ.get(STARTUP_CHECKED) != "1")
        except StoreUnavailable as exc:
            if settings.redis_url:
                raise SettingsError(f"redis_url: {exc} (env DTESN_REDIS_URL)") from None
            raise SettingsError(f"dataset_dir {settings.dataset_path}: {exc} (env DTESN_DATASET_DIR)") from None
        keys = tuple(key.strip().encode() for key in settings.api_keys.split(",") if key.strip())
        state = Kit(settings, runtime, load_policies(), self.url_prefix, keys, CORS(settings.cors_origins))
        app.extensions[EXTENSION_KEY] = state
        app.register_blueprint(bp, url_prefix=self.url_prefix)
        return state
