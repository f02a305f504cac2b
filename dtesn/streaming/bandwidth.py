"""Bandwidth-hint policies for /stream_optimized, and the `auto` hint that moves between them.

`auto` measures delivery, not production: the time each write stays blocked in the server's
socket send (the client's reading pace shows there once the socket buffers are full). Over a
window of WINDOW_S it computes bytes written / seconds blocked; below the current policy's
`min_bytes_per_sec` it moves down one policy at once; when for UP_WINDOWS windows in a row
writes hardly block, or the rate is well above the next policy's need, it moves up one
(slower to rise than to fall: empty socket buffers make any stream look fast at first).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..settings import config_dir
from .compression import CODECS

POLICIES_FILE = config_dir() / "bandwidth.toml"
ORDER = ("low", "medium", "high")
HINTS = (*ORDER, "auto")
AUTO_START = "medium"
WINDOW_S = 0.5
#: A window counts as "not blocking" when writes were blocked for less than this share of it.
FREE_SHARE = 0.05
UP_MARGIN = 2.0  # moving up needs the next policy's rate times this
UP_WINDOWS = 2


class PolicyError(ValueError):
    """config/bandwidth.toml is invalid; the message names the policy and key."""


@dataclass(frozen=True)
class Policy:
    name: str
    chunk_size: int
    compression_level: int
    codec: str
    write_buffer: int
    piece_bytes: int
    heartbeat_interval: float
    retry_ms: int
    socket_buffer: int  # SO_SNDBUF; 0: the kernel's autotuning
    min_bytes_per_sec: int

    def check(self) -> None:
        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise PolicyError(f"[{self.name}] {key} must be {what}, got {getattr(self, key)!r}")

        need(512 <= self.chunk_size <= 16384, "chunk_size", "an integer in 512..16384")
        need(0 <= self.compression_level <= 3, "compression_level", "0..3")
        need(self.codec in CODECS, "codec", "one of " + ", ".join(CODECS))
        need(2048 <= self.write_buffer <= 32768, "write_buffer", "2048..32768 bytes")
        need(256 <= self.piece_bytes <= 1 << 20, "piece_bytes", "256..1048576 bytes")
        need(0 < self.heartbeat_interval < 3600, "heartbeat_interval", "in (0, 3600) seconds")
        need(100 <= self.retry_ms <= 600_000, "retry_ms", "100..600000")
        need(self.socket_buffer == 0 or 4096 <= self.socket_buffer <= 1 << 24, "socket_buffer",
             "0 (the kernel's autotuning) or 4096..16777216 bytes")
        need(0 <= self.min_bytes_per_sec, "min_bytes_per_sec", "at least 0")


def load_policies(path: Path = POLICIES_FILE) -> dict[str, Policy]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc
    if sorted(raw) != sorted(ORDER):
        raise PolicyError(f"{path} must define exactly the policies {', '.join(ORDER)}, found {', '.join(raw) or 'none'}")
    policies = {}
    for name in ORDER:
        table = raw[name]
        keys = [f.name for f in fields(Policy) if f.name != "name"]
        missing, unknown = sorted(set(keys) - set(table)), sorted(set(table) - set(keys))
        if missing or unknown:
            raise PolicyError(f"{path} [{name}]: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        for f in fields(Policy):
            if f.name in table and f.type in ("int", "float") and (isinstance(table[f.name], bool) or not isinstance(table[f.name], (int, float))):
                raise PolicyError(f"{path} [{name}] {f.name} must be a number")
        typed: dict[str, Any] = {k: float(v) if k == "heartbeat_interval" else v for k, v in table.items()}
        policy = Policy(name=name, **typed)
        policy.check()
        policies[name] = policy
    if [policies[n].min_bytes_per_sec for n in ORDER] != sorted(policies[n].min_bytes_per_sec for n in ORDER):
        raise PolicyError(f"{path}: min_bytes_per_sec must grow from low to high")
    return policies


@dataclass(frozen=True)
class Move:
    old: Policy
    new: Policy
    measured_bytes_per_sec: float | None  # None: writes did not block at all


class Tuner:
    """The stream's current policy; with `auto`, moved by the delivery rate it observes."""

    def __init__(self, policies: dict[str, Policy], hint: str, clock=time.monotonic) -> None:
        self.policies = policies
        self.auto = hint == "auto"
        self.policy = policies[AUTO_START if self.auto else hint]
        self._clock = clock
        self._window_start = clock()
        self._bytes = 0
        self._blocked = 0.0
        self._fast_windows = 0

    def written(self, nbytes: int, blocked_s: float) -> Move | None:
        """Account one write; a Move when the window closes and the policy changes."""
        if not self.auto:
            return None
        self._bytes += nbytes
        self._blocked += blocked_s
        now = self._clock()
        span = now - self._window_start
        if span < WINDOW_S:
            return None
        rate = self._bytes / self._blocked if self._blocked > 0 else None
        free = self._blocked < FREE_SHARE * span
        self._window_start, self._bytes, self._blocked = now, 0, 0.0
        step = ORDER.index(self.policy.name)
        if not free and rate is not None and rate < self.policy.min_bytes_per_sec and step > 0:
            return self._move(ORDER[step - 1], rate)
        if step == len(ORDER) - 1:
            return None
        up = self.policies[ORDER[step + 1]]
        fast = free or (rate is not None and rate >= UP_MARGIN * up.min_bytes_per_sec)
        self._fast_windows = self._fast_windows + 1 if fast else 0
        return self._move(up.name, rate) if self._fast_windows >= UP_WINDOWS else None

    def _move(self, name: str, rate: float | None) -> Move:
        self._fast_windows = 0
        old, self.policy = self.policy, self.policies[name]
        return Move(old, self.policy, rate)
