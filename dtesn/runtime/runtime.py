"""The runtime: everything a running kit owns, in one object instead of module globals.

An app owns one (the Flask extension builds it), and so does a plain gevent program that
calls `dtesn.events` (it builds one per call unless handed its own). Two runtimes in one
process share nothing: their threads, caches, estimates, open streams and stores are their
own, so two apps with different settings do not affect each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine import RateTable, ReservoirParams, Session, WeightCache
from ..settings import Settings
from ..storage.checkpoints import CheckpointStore, MemoryCheckpointStore
from ..storage.datasets import DatasetStore
from ..storage.fingerprints import FingerprintStore
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
    fingerprints: FingerprintStore = field(default_factory=FingerprintStore)
    datasets: DatasetStore | None = None  # None: no dataset store (plain gevent programs)

    @classmethod
    def create(cls, settings: Settings, *, datasets: bool = True) -> Runtime:
        """A runtime for `settings`; with `datasets`, its dataset store opens (and sweeps) its
        directory now, raising StoreUnavailable when it cannot be used."""
        store = None
        if datasets:
            store = DatasetStore(settings.dataset_path, settings.dataset_max_bytes, settings.dataset_store_max_bytes,
                                 settings.dataset_ttl)
        checkpoints = None
        if settings.checkpoint_max_bytes:
            checkpoints = MemoryCheckpointStore(settings.checkpoint_ttl, settings.checkpoint_max_bytes)
        return cls(settings, EnginePool(settings.compute_threads), WeightCache(settings.cache_size),
                   checkpoints=checkpoints, datasets=store)

    def session(self, params: ReservoirParams) -> Session:
        """A new session on the (cached) weights for `params`; may build them (milliseconds)."""
        return Session(self.weights.get(params))

    def status(self) -> dict:
        """What /status reports of this runtime."""
        return {**self.metrics.snapshot(), "compute_tasks": self.pool.running, "engine_cache": self.weights.info()}

    def close(self) -> None:
        """Stop the engine threads; for programs that build runtimes and go on running."""
        self.pool.close()
