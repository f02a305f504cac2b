"""Weights of a DTESN, built once per parameter set and shared read-only by sessions.

Connections are stored in a transposed ELLPACK layout: every neuron reads exactly K
inputs (its recurrent fan-in from its own membrane, then its coupling fan-in from its
parent's membrane), so one step is one gather, one multiply and one column sum over a
(K, N) array, whatever the tree's shape: no Python loop over membranes and O(N K) work
instead of the O(N^2) of a dense matrix.

Input weights are integers (in -INPUT_LEVELS..INPUT_LEVELS) times one scale. Byte input
is integral too, so the input projection of a chunk is an exact integer computation in
floating point (every partial sum stays below 2**24): BLAS may sum in any order and the
result is still bit-identical, which is what makes features independent of how the
input was split into chunks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .membranes import MembraneTree, membrane_tree
from .params import ReservoirParams

INPUT_LEVELS = 8


@dataclass(frozen=True)
class Weights:
    params: ReservoirParams
    tree: MembraneTree
    sources: np.ndarray  # (K, N) intp: which neuron's state each input slot reads
    values: np.ndarray  # (K, N) dtype: the weight of each slot (0 where unused)
    recurrent_fanin: int  # the first `recurrent_fanin` rows are W_m, the rest C_m
    input_units: np.ndarray  # (F, n) integer-valued dtype: W_in.T / input_scale
    input_scale: float
    leak: np.ndarray  # (N,) leak rate of every neuron
    spectral_radii: np.ndarray  # (M,) float64, measured before scaling

    @property
    def neurons(self) -> int:
        return self.sources.shape[1]

    def recurrent_blocks(self) -> np.ndarray:
        """Dense (M, n, n) float64 copies of the recurrent blocks (for checks, not for stepping)."""
        return self._dense(slice(0, self.recurrent_fanin), offset_of="self")

    def coupling_blocks(self) -> np.ndarray:
        """Dense (M, n, n) float64 blocks C_m (zero for the skin): child row reads parent column."""
        return self._dense(slice(self.recurrent_fanin, None), offset_of="parent")

    def input_matrix(self) -> np.ndarray:
        """W_in as a float64 (n, F) matrix."""
        return self.input_units.T.astype(np.float64) * self.input_scale

    def _dense(self, rows: slice, offset_of: str) -> np.ndarray:
        m, n = self.tree.count, self.params.neurons_per_membrane
        blocks = np.zeros((m, n, n))
        neuron = np.arange(self.neurons)
        membrane = neuron // n
        for src, val in zip(self.sources[rows], self.values[rows]):
            owner = membrane if offset_of == "self" else np.maximum(self.tree.parents[membrane], 0)
            np.add.at(blocks, (membrane, neuron % n, src - owner * n), val.astype(np.float64))
        return blocks


def build_weights(params: ReservoirParams) -> Weights:
    """Draw every weight from numpy's default_rng(seed), in a fixed order."""
    rng = np.random.default_rng(params.seed)
    tree = membrane_tree(params.membrane_depth)
    m, n, f = tree.count, params.neurons_per_membrane, params.frame_size
    fanin = min(params.connectivity, n)
    dtype = np.dtype(params.dtype)

    # Recurrent blocks W_m: `fanin` distinct sources per neuron within its membrane.
    local = _distinct_sources(rng, m * n, n, fanin)  # (m*n, fanin) in 0..n-1
    values = rng.uniform(-1.0, 1.0, size=(m, n, fanin))
    dense = np.zeros((m, n, n))
    np.put_along_axis(dense, local.reshape(m, n, fanin), values, axis=2)
    radii = np.abs(np.linalg.eigvals(dense)).max(axis=1)
    if np.any(radii == 0.0):  # pragma: no cover - needs a measure-zero draw
        raise RuntimeError("a recurrent block drew a zero spectral radius; choose another seed")
    values *= (params.spectral_radius / radii)[:, None, None]
    membrane_of = np.repeat(np.arange(m), n)
    sources = [(local + (membrane_of * n)[:, None]).T]
    weights = [values.reshape(m * n, fanin).T]

    # Coupling blocks C_m: children read `coupling_fanin` neurons of their parent's membrane.
    if m > 1:
        coupling_fanin = min(params.coupling_fanin, n)
        parent_local = _distinct_sources(rng, m * n, n, coupling_fanin)
        coupling = rng.uniform(-1.0, 1.0, size=(m * n, coupling_fanin))
        coupling *= params.coupling * np.sqrt(3.0 / coupling_fanin)
        parent = tree.parents[membrane_of]
        is_skin = parent < 0
        coupling[is_skin] = 0.0  # the skin has no parent: its slots read itself with weight 0
        base = np.where(is_skin, membrane_of, parent) * n
        sources.append((parent_local + base[:, None]).T)
        weights.append(coupling.T)

    # Input weights W_in (skin only), integer units so that byte projections are exact.
    units = rng.integers(-INPUT_LEVELS, INPUT_LEVELS + 1, size=(f, n)).astype(dtype)
    input_scale = params.input_scaling * np.sqrt(3.0 / f) / INPUT_LEVELS

    leak = params.leak_rate * params.leak_decay ** (tree.levels[membrane_of] - 1)
    result = Weights(
        params=params,
        tree=tree,
        sources=np.ascontiguousarray(np.concatenate(sources), dtype=np.intp),
        values=np.ascontiguousarray(np.concatenate(weights), dtype=dtype),
        recurrent_fanin=fanin,
        input_units=units,
        input_scale=float(input_scale),
        leak=leak.astype(dtype),
        spectral_radii=radii,
    )
    for array in (result.sources, result.values, result.input_units, result.leak, result.spectral_radii):
        array.flags.writeable = False
    return result


def _distinct_sources(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """`k` distinct indices in 0..n-1 for each of `rows` rows, sorted (for gather locality)."""
    if k == n:
        return np.broadcast_to(np.arange(n), (rows, n)).copy()
    chosen = np.argpartition(rng.random((rows, n)), k, axis=1)[:, :k]
    return np.sort(chosen, axis=1)


class WeightCache:
    """A bounded, thread-safe LRU of built weights; concurrent requests for one key build once."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[ReservoirParams, Weights] = OrderedDict()
        self._building: dict[ReservoirParams, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __contains__(self, params: object) -> bool:
        """Built already: a session on them costs microseconds, not an eigen-solve."""
        with self._lock:
            return params in self._entries

    def get(self, params: ReservoirParams) -> Weights:
        with self._lock:
            if params in self._entries:
                self._entries.move_to_end(params)
                self.hits += 1
                return self._entries[params]
            key_lock = self._building.setdefault(params, threading.Lock())
        with key_lock:
            with self._lock:
                if params in self._entries:
                    self.hits += 1
                    return self._entries[params]
                self.misses += 1
            weights = build_weights(params)
            with self._lock:
                self._entries[params] = weights
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
                self._building.pop(params, None)
            return weights

    def info(self) -> dict:
        with self._lock:
            return {
                "entries": len(self._entries),
                "maxsize": self.maxsize,
                "hits": self.hits,
                "misses": self.misses,
            }
