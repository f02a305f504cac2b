"""The DTESN engine: NumPy and numba only (no Flask, no gevent), safe to run in worker threads."""

from __future__ import annotations

from .membranes import MembraneTree, membrane_count, membrane_tree
from .params import RANGES, ParameterError, ReservoirParams
from .rates import RateTable
from .reference import ReferenceReservoir
from .reservoir import CompiledReservoir, warm_up
from .session import ChunkResult, Session, Snapshot
from .weights import CONSTRUCTION, WeightCache, Weights, build_weights


def session(params: ReservoirParams) -> Session:
    """A new session on new weights for `params` (a server shares them through its runtime's
    WeightCache; building them takes milliseconds at any size)."""
    return Session(build_weights(params))


__all__ = [
    "CONSTRUCTION",
    "RANGES",
    "ChunkResult",
    "CompiledReservoir",
    "MembraneTree",
    "ParameterError",
    "RateTable",
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
]
