"""Stream fingerprints in Redis (`<prefix>fp:<request id>`, JSON, expiring after TTL_S):
about 150 bytes a stream, written off the stream's path like checkpoints are. When Redis
fails, a lookup answers "unknown" (the resume recomputes unchecked, as for a stream older
than a day) with a warning."""

from __future__ import annotations

import json

import redis

from .background import BackgroundWrites
from .fingerprints import TTL_S, Fingerprint
from .redis_connection import Warnings


class RedisFingerprintStore:
    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str, warnings: Warnings, ttl_s: float = TTL_S) -> None:
        self.writes = BackgroundWrites("fingerprint write", warnings)
        self._client = client
        self._prefix = prefix
        self._warnings = warnings
        self._ttl_ms = int(ttl_s * 1000)

    def save(self, request_id: str, fingerprint: Fingerprint) -> None:
        value = json.dumps(fingerprint.to_json())
        self.writes.submit(request_id, lambda: self._client.set(self._prefix + "fp:" + request_id, value, px=self._ttl_ms))

    def get(self, request_id: str) -> Fingerprint | None:
        try:
            value = self._client.get(self._prefix + "fp:" + request_id)
        except redis.RedisError as exc:
            self._warnings.warn("fingerprint read", "a resume could not read its stream's fingerprint, so it goes unchecked", exc)
            return None
        if value is None:
            return None
        try:
            return Fingerprint(**json.loads(value))
        except (ValueError, TypeError):
            return None
