"""dtesn-stream: Server-Sent Event streams from a Deep Tree Echo State Network.

    from dtesn import DTESN          # the Flask extension: DTESN(app, **settings)
    from dtesn import create_app     # the standalone app (what the Procfile serves)
    from dtesn import events         # the same events as /stream_chunks, in a gevent program
    from dtesn import Settings, SettingsError

Names are imported on first use: gunicorn's config imports `dtesn.settings` before the
one-BLAS-thread environment is set, and must not pull in NumPy or Flask with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DTESN": "dtesn.web",
    "create_app": "dtesn.web",
    "events": "dtesn.iteration",
    "Runtime": "dtesn.runtime",
    "Settings": "dtesn.settings",
    "SettingsError": "dtesn.settings",
}
__all__ = ["DTESN", "Runtime", "Settings", "SettingsError", "create_app", "events"]

if TYPE_CHECKING:
    from .iteration import events
    from .runtime import Runtime
    from .settings import Settings, SettingsError
    from .web import DTESN, create_app


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dtesn' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
