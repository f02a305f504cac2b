"""The DTESN engine: NumPy only (no Flask, no gevent), safe to run in worker threads."""

from __future__ import annotations

from .membranes import MembraneTree, membrane_count, membrane_tree
from .params import RANGES, ParameterError, ReservoirParams
from .reference import ReferenceReservoir
from .reservoir import CompiledReservoir, warm_up
from .session import ChunkResult, Session, Snapshot
from .weights import WeightCache, Weights, build_weights

#: The process-wide cache: identical parameters share one set of weights.
weight_cache = WeightCache()


def session(params: ReservoirParams) -> Session:
    """A new session on the (cached) weights for `params`."""
    return Session(weight_cache.get(params))


__all__ = [
    "RANGES",
    "ChunkResult",
    "CompiledReservoir",
    "MembraneTree",
    "ParameterError",
    "ReferenceReservoir",
    "ReservoirParams",
    "Session",
    "Snapshot",
    "WeightCache",
    "Weights",
    "build_weights",
    "membrane_count",
    "membrane_tree",
    "session",
    "warm_up",
    "weight_cache",
]
