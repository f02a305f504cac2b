"""The runtime: everything a running kit owns, in one object instead of module globals.

An app owns one (the Flask extension builds it), and so does a plain gevent program that
calls `dtesn.events` (it builds one per call unless handed its own). Two runtimes in one
process share nothing: their threads, caches, estimates, open streams and stores are their
own, so two apps with different settings do not affect each other. With DTESN_REDIS_URL,
the stores are Redis's instead, shared by every worker and instance that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from ..engine import RateTable, ReservoirParams, Session, WeightCache
from ..settings import Settings
from ..storage.background import BackgroundWrites
from ..storage.checkpoints import CheckpointStore, MemoryCheckpointStore
from ..storage.datasets import DatasetStore, DiskDatasetStore
from ..storage.fingerprints import FingerprintStore, MemoryFingerprintStore
from ..storage.redis_checkpoints import RedisCheckpointStore
from ..storage.redis_connection import Warnings, connect, redacted
from ..storage.redis_datasets import RedisDatasetStore
from ..storage.redis_fingerprints import RedisFingerprintStore
from .drain import Drain
from .metrics import Metrics
from .pool import EnginePool


@dataclass
class Runtime:
    settings: Settings
    pool: EnginePool
    weights: WeightCache
    rates: RateTable = field(default_factory=RateTable)
    drain: Drain = field(default_factory=Drain)
    metrics: Metrics = field(default_factory=Metrics)
    checkpoints: CheckpointStore | None = None  # None: checkpoints off (resumes recompute)
    fingerprints: FingerprintStore = field(default_factory=MemoryFingerprintStore)
    datasets: DatasetStore | None = None  # None: no dataset store (plain gevent programs)
    redis: redis.Redis | None = None  # the client of DTESN_REDIS_URL, when set
    writers: tuple[BackgroundWrites, ...] = ()  # the Redis stores' writer greenlets

    @classmethod
    def create(cls, settings: Settings, *, datasets: bool = True, check_redis: bool = True) -> Runtime:
        """A runtime for `settings`: its stores in Redis when `redis_url` is set (raising
        StoreUnavailable when it cannot be reached, unless `check_redis` is false), else in
        memory and in `dataset_dir` (opened and swept now, StoreUnavailable when it cannot be
        used). Without `datasets`, no dataset store."""
        s = settings
        pool, weights = EnginePool(s.compute_threads), WeightCache(s.cache_size)
        if s.redis_url:
            client, warnings = connect(s.redis_url, check_redis), Warnings()
            checkpoints = RedisCheckpointStore(client, s.redis_prefix, s.checkpoint_ttl, s.checkpoint_max_bytes,
                                               warnings) if s.checkpoint_max_bytes else None
            fingerprints = RedisFingerprintStore(client, s.redis_prefix, warnings)
            return cls(s, pool, weights, redis=client, checkpoints=checkpoints, fingerprints=fingerprints,
                       datasets=RedisDatasetStore(client, s.redis_prefix, s.dataset_max_bytes, s.dataset_store_max_bytes,
                                                  s.dataset_ttl) if datasets else None,
                       writers=(fingerprints.writes, *([checkpoints.writes] if checkpoints else [])))
        return cls(s, pool, weights,
                   checkpoints=MemoryCheckpointStore(s.checkpoint_ttl, s.checkpoint_max_bytes) if s.checkpoint_max_bytes else None,
                   datasets=DiskDatasetStore(s.dataset_path, s.dataset_max_bytes, s.dataset_store_max_bytes,
                                             s.dataset_ttl) if datasets else None)

    def session(self, params: ReservoirParams) -> Session:
        """A new session on the (cached) weights for `params`; may build them (milliseconds)."""
        return Session(self.weights.get(params))

    def stores(self) -> dict:
        """Which stores hold what (for /status): memory, disk, redis or off."""
        found = {
            "checkpoints": "off" if self.checkpoints is None else self.checkpoints.kind,
            "fingerprints": self.fingerprints.kind,
            "datasets": "off" if self.datasets is None else self.datasets.kind,
        }
        if self.redis is not None:
            found["redis"] = redacted(self.settings.redis_url)
        return found

    def status(self) -> dict:
        """What /status reports of this runtime."""
        return {**self.metrics.snapshot(), "compute_tasks": self.pool.running, "engine_cache": self.weights.info(),
                "stores": self.stores()}

    def close(self) -> None:
        """Stop the engine threads and the stores' writers; for programs that build runtimes
        and go on running."""
        self.pool.close()
        for writer in self.writers:
            writer.close()
        if self.redis is not None:
            self.redis.close()
