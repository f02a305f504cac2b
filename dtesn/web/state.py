"""What the kit holds for one app, and the one typed way views reach it: `kit()`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from ..runtime import Runtime
from ..settings import Settings
from ..streaming.bandwidth import Policy
from .cors import CORS

EXTENSION_KEY = "dtesn"
BLUEPRINT = "dtesn"  # the kit's blueprint: its endpoints are named dtesn.<area>.<view>


@dataclass(frozen=True)
class Kit:
    """What the kit holds for one app."""

    settings: Settings
    runtime: Runtime
    policies: dict[str, Policy]
    url_prefix: str
    api_keys: tuple[bytes, ...]
    cors: CORS

    def under_prefix(self, path: str) -> bool:
        return path == self.url_prefix or path.startswith(self.url_prefix + "/")


def kit(app: Flask | None = None) -> Kit:
    """The kit of `app` (default: the current app); a clear error where none was set up."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("dtesn is not set up on this app: DTESN(app) or DTESN().init_app(app)") from None
