"""Settings: defaults from config/dtesn.toml, each overridable by a DTESN_* variable.

Loaded by gunicorn's config (in the master, before any worker starts) and by the app
factory, so a bad value stops start-up with one clear line instead of failing a request.
Imports nothing heavy: it runs as gunicorn reads its config, before the one-BLAS-thread
settings are in place (the master imports NumPy only later, to compile the kernel).
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "config" / "dtesn.toml"
ENV_PREFIX = "DTESN_"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the key and what it accepts."""


@dataclass(frozen=True)
class Settings:
    worker_connections: int
    max_streams: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    api_keys: str
    max_body_bytes: int
    process_max_bytes: int
    body_timeout: float
    json_max_bytes: int
    send_timeout: float
    cache_size: int
    compute_threads: int
    heartbeat_interval: float
    checkpoint_ttl: float
    checkpoint_max_bytes: int
    dataset_dir: str
    dataset_max_bytes: int
    dataset_store_max_bytes: int
    dataset_ttl: float

    def __post_init__(self) -> None:
        _at_least("worker_connections", self.worker_connections, 1)
        _at_least("max_streams", self.max_streams, 1)
        if self.max_streams >= self.worker_connections:
            raise SettingsError(
                "max_streams must stay below worker_connections: past worker_connections a new "
                "connection waits silently in the accept backlog instead of getting its 503"
            )
        _at_least("timeout", self.timeout, 1)
        _at_least("graceful_timeout", self.graceful_timeout, 1)
        _at_least("keepalive", self.keepalive, 0)
        _at_least("max_body_bytes", self.max_body_bytes, 1)
        _at_least("process_max_bytes", self.process_max_bytes, 1)
        _at_least("body_timeout", self.body_timeout, 0)
        _at_least("json_max_bytes", self.json_max_bytes, 1)
        _at_least("send_timeout", self.send_timeout, 0)
        _at_least("cache_size", self.cache_size, 1)
        _at_least("compute_threads", self.compute_threads, 1)
        _at_least("heartbeat_interval", self.heartbeat_interval, 0)
        _at_least("checkpoint_ttl", self.checkpoint_ttl, 0)
        _at_least("checkpoint_max_bytes", self.checkpoint_max_bytes, 0)
        _at_least("dataset_max_bytes", self.dataset_max_bytes, 1)
        _at_least("dataset_store_max_bytes", self.dataset_store_max_bytes, 1)
        _at_least("dataset_ttl", self.dataset_ttl, 1)
        if self.process_max_bytes > self.max_body_bytes:
            raise SettingsError("process_max_bytes must not exceed max_body_bytes")

    @property
    def dataset_path(self) -> Path:
        """DTESN_DATASET_DIR, or a directory under the system's temporary one."""
        return Path(self.dataset_dir) if self.dataset_dir else Path(tempfile.gettempdir()) / "dtesn-datasets"

    def heartbeat_for(self, endpoint_default: float) -> float:
        """DTESN_HEARTBEAT_INTERVAL, when set, overrides every endpoint's default."""
        return self.heartbeat_interval or endpoint_default

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, path: Path = DEFAULTS_FILE) -> "Settings":
        environ = os.environ if environ is None else environ
        try:
            with path.open("rb") as fh:
                sections = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read {path}: {exc}") from exc
        flat = {key: value for section in sections.values() for key, value in section.items()}
        values = {}
        for f in fields(cls):
            if f.name not in flat:
                raise SettingsError(f"{path} has no value for {f.name}")
            kind = type(flat[f.name])
            raw = environ.get(ENV_PREFIX + f.name.upper())
            values[f.name] = flat[f.name] if raw is None else _parse(f.name, raw, kind)
            if kind is float:
                values[f.name] = float(values[f.name])
            elif not isinstance(values[f.name], kind) or isinstance(values[f.name], bool):
                raise SettingsError(f"{f.name} in {path} must be {kind.__name__}")
        unknown = sorted(set(flat) - set(values))
        if unknown:
            raise SettingsError(f"{path} has unknown setting(s): {', '.join(unknown)}")
        return cls(**values)


def _parse(name: str, raw: str, kind: type) -> int | float:
    try:
        return kind(raw.strip())
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def _at_least(name: str, value: float, low: float) -> None:
    if not low <= value < float("inf"):  # also refuses NaN
        raise SettingsError(f"{name} must be at least {low}, got {value} (env {ENV_PREFIX}{name.upper()})")
