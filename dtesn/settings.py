"""Settings: defaults from config/dtesn.toml, each overridable by a DTESN_* variable, and
by keyword arguments in code (the Flask extension's, or `Settings.load(**overrides)`), which
win over both.

Loaded by gunicorn's config (in the master, before any worker starts) and by the app
factory, so a bad value stops start-up with one clear line instead of failing a request.
Imports nothing heavy: it runs as gunicorn reads its config, before the one-BLAS-thread
settings are in place (the master imports NumPy only later, to compile the kernel).
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "DTESN_"
MALLOC_THRESHOLD_MAX = 32 << 20  # glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_ORIGIN = re.compile(r"https?://[^/\s,]+")


def config_dir() -> Path:
    """The kit's config/: inside the package when installed from a wheel (pyproject.toml maps
    it to dtesn/config), beside the package in a source tree or an editable install."""
    here = Path(__file__).resolve().parent
    packaged = here / "config"
    return packaged if packaged.is_dir() else here.parent / "config"


DEFAULTS_FILE = config_dir() / "dtesn.toml"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the key and what it accepts."""


@dataclass(frozen=True)
class Settings:
    worker_connections: int
    max_streams: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    malloc_threshold_bytes: int
    api_keys: str
    cors_origins: str
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
    redis_url: str
    redis_prefix: str

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
        if not 0 <= self.malloc_threshold_bytes <= MALLOC_THRESHOLD_MAX:
            raise SettingsError(f"malloc_threshold_bytes must be between 0 and {MALLOC_THRESHOLD_MAX} "
                                f"(glibc's limit), got {self.malloc_threshold_bytes} "
                                f"(env {ENV_PREFIX}MALLOC_THRESHOLD_BYTES)")
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
        bad_origins = [o for o in (o.strip() for o in self.cors_origins.split(",")) if o and o != "*" and not _ORIGIN.fullmatch(o)]
        if bad_origins:
            raise SettingsError(f"cors_origins: {bad_origins[0]!r} is not an origin (scheme://host[:port], or *) "
                                f"(env {ENV_PREFIX}CORS_ORIGINS)")
        if self.redis_url and not self.redis_url.startswith(REDIS_SCHEMES):
            raise SettingsError(f"redis_url must start with {', '.join(REDIS_SCHEMES)}, got {self.redis_url!r} "
                                f"(env {ENV_PREFIX}REDIS_URL)")
        if self.process_max_bytes > self.max_body_bytes:
            raise SettingsError("process_max_bytes must not exceed max_body_bytes")

    @property
    def dataset_path(self) -> Path:
        """DTESN_DATASET_DIR, or a directory under the system's temporary one."""
        return Path(self.dataset_dir) if self.dataset_dir else Path(tempfile.gettempdir()) / "dtesn-datasets"

    def heartbeat_for(self, endpoint_default: float) -> float:
        """DTESN_HEARTBEAT_INTERVAL, when set, overrides every endpoint's default."""
        return self.heartbeat_interval or endpoint_default

    def replace(self, **changes: Any) -> Settings:
        """These settings with `changes` (checked like any others)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        for f in fields(self):
            if f.name in changes:
                changes[f.name] = _typed(f.name, changes[f.name], type(getattr(self, f.name)))
        return replace(self, **changes)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, path: Path = DEFAULTS_FILE, **overrides: Any) -> Settings:
        """The defaults file, then the DTESN_* environment, then `overrides`."""
        environ = os.environ if environ is None else environ
        try:
            with path.open("rb") as fh:
                sections = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read {path}: {exc}") from exc
        flat = {key: value for section in sections.values() for key, value in section.items()}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in flat:
                raise SettingsError(f"{path} has no value for {f.name}")
            kind = type(flat[f.name])
            raw = environ.get(ENV_PREFIX + f.name.upper())
            value = flat[f.name] if raw is None else _parse(f.name, raw, kind)
            if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
                raise SettingsError(f"{f.name} in {path} must be {kind.__name__}")
            values[f.name] = float(value) if kind is float else value
        unknown = sorted(set(flat) - set(values))
        if unknown:
            raise SettingsError(f"{path} has unknown setting(s): {', '.join(unknown)}")
        return cls(**values).replace(**overrides)


def _parse(name: str, raw: str, kind: type) -> int | float:
    try:
        return kind(raw.strip())
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def _typed(name: str, value: Any, kind: type) -> Any:
    """A value given in code, as the type its setting has (an int for a float is fine)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SettingsError(f"{name} must be {kind.__name__}, got {value!r}")
    return value


def _at_least(name: str, value: float, low: float) -> None:
    if not low <= value < float("inf"):  # also refuses NaN
        raise SettingsError(f"{name} must be at least {low}, got {value} (env {ENV_PREFIX}{name.upper()})")
