"""Weights of a DTESN, built once per parameter set and shared read-only by sessions.

Connections are stored in ELLPACK form: every neuron reads exactly K inputs (its
recurrent fan-in from its own membrane, then its coupling fan-in from its parent's
membrane), so a step is O(N K) work whatever the tree's shape, with no Python loop over
membranes and no O(N^2) dense matrix.

Recurrent blocks with a known spectral radius, at any size. Inside a membrane the neurons
are split into groups of at most GROUP_MAX, arranged in a ring: a neuron reads `connectivity`
neurons of the group before its own. Such a block W is g-cyclic, so its eigenvalues are
the g-th roots of those of one small product P = B_0 B_{g-1} ... B_1 of the ring's
group-to-group blocks: rho(W) = rho(P)^(1/g), one dense eigen-solve of at most 64 x 64 per
membrane, all membranes of a tree in one batched call. Measured: esn_size 4096 at depth 1
built in about 10 ms (the dense eigen-solve of the whole 4096 block took 42-46 s), and the
radius agrees with a dense solve of the whole block to 1e-9 (tested). A membrane of at
most 64 neurons is one group: a plain sparse random block, solved densely.

Each skin neuron reads `input_fanin` bytes of a frame (more when the skin is too small for
every byte to be read by someone: every byte is). A fixed input fan-in, like ReservoirPy's
`input_connectivity`, keeps the input's cost O(N) instead of O(N F): dense at frame 64 it
cost as much as the whole recurrence at esn_size 4096. Every sum a step takes runs in one
fixed order (see `kernel.py`), so features do not depend on how the input was split.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .membranes import MembraneTree, membrane_tree
from .params import ReservoirParams

GROUP_MAX = 64


@dataclass(frozen=True)
class Weights:
    params: ReservoirParams
    tree: MembraneTree
    sources: np.ndarray  # (K, N) intp: which neuron's state each input slot reads
    values: np.ndarray  # (K, N) dtype: the weight of each slot (0 where unused)
    recurrent_fanin: int  # the first `recurrent_fanin` rows are W_m, the rest C_m
    offsets: np.ndarray  # (N, K) uint16: `sources` relative to the membrane they read (the kernel's layout)
    row_values: np.ndarray  # (N, K): `values` by neuron (the kernel's layout)
    input_sources: np.ndarray  # (n, k_in) uint16: which byte of a frame each skin input slot reads
    input_values: np.ndarray  # (n, k_in) dtype: the weight of each skin input slot
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
        n = len(self.input_sources)
        dense = np.zeros((n, self.params.frame_size))
        np.add.at(dense, (np.arange(n)[:, None], self.input_sources), self.input_values.astype(np.float64))
        return dense

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
    dtype = np.dtype(params.dtype)
    ring = _Ring(n)

    # Recurrent blocks W_m: `fanin` distinct sources per neuron in the group before its own.
    fanin = min(params.connectivity, int(ring.sizes.min()))
    within = _distinct(rng, m * n, np.tile(ring.source_size, m), fanin)
    local = within + np.tile(ring.source_start, m)[:, None]  # (m*n, fanin) in 0..n-1
    values = rng.uniform(-1.0, 1.0, size=(m * n, fanin))
    radii = ring.spectral_radii(local.reshape(m, n, fanin), values.reshape(m, n, fanin))
    if np.any(radii == 0.0):  # pragma: no cover - needs a measure-zero draw
        raise RuntimeError("a recurrent block drew a zero spectral radius; choose another seed")
    values *= np.repeat(params.spectral_radius / radii, n)[:, None]
    membrane_of = np.repeat(np.arange(m), n)
    sources = [(local + (membrane_of * n)[:, None]).T]
    offsets = [local]
    weights = [values.T]

    # Coupling blocks C_m: children read `coupling_fanin` neurons of their parent's membrane.
    if m > 1:
        coupling_fanin = min(params.coupling_fanin, n)
        parent_local = _distinct(rng, m * n, np.full(m * n, n), coupling_fanin)
        coupling = rng.uniform(-1.0, 1.0, size=(m * n, coupling_fanin))
        coupling *= params.coupling * np.sqrt(3.0 / coupling_fanin)
        parent = tree.parents[membrane_of]
        is_skin = parent < 0
        coupling[is_skin] = 0.0  # the skin has no parent: its slots read itself with weight 0
        base = np.where(is_skin, membrane_of, parent) * n
        sources.append((parent_local + base[:, None]).T)
        offsets.append(parent_local)
        weights.append(coupling.T)

    # Input weights W_in (skin only): each row's expected L2 norm is `input_scaling`.
    input_fanin = min(f, max(params.input_fanin, -(-f // n)))
    input_sources = _covering(rng, n, f, input_fanin)
    input_values = rng.uniform(-1.0, 1.0, size=(n, input_fanin)) * (params.input_scaling * np.sqrt(3.0 / input_fanin))

    leak = params.leak_rate * params.leak_decay ** (tree.levels[membrane_of] - 1)
    result = Weights(
        params=params,
        tree=tree,
        sources=np.ascontiguousarray(np.concatenate(sources), dtype=np.intp),
        values=np.ascontiguousarray(np.concatenate(weights), dtype=dtype),
        recurrent_fanin=fanin,
        offsets=np.ascontiguousarray(np.concatenate(offsets, axis=1), dtype=np.uint16),
        row_values=np.ascontiguousarray(np.concatenate(weights).T, dtype=dtype),
        input_sources=input_sources,
        input_values=input_values.astype(dtype),
        leak=leak.astype(dtype),
        spectral_radii=radii,
    )
    for array in (result.sources, result.values, result.offsets, result.row_values, result.input_sources, result.input_values,
                  result.leak, result.spectral_radii):
        array.flags.writeable = False
    return result


class _Ring:
    """A membrane's neurons as a ring of groups of at most GROUP_MAX (see the module's docstring)."""

    def __init__(self, n: int) -> None:
        groups = -(-n // GROUP_MAX)
        self.sizes = np.full(groups, n // groups)
        self.sizes[: n % groups] += 1
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        group_of = np.repeat(np.arange(groups), self.sizes)
        before = (group_of - 1) % groups  # the group each neuron reads (itself when there is one)
        self.source_start = self.starts[before]
        self.source_size = self.sizes[before]

    def spectral_radii(self, local: np.ndarray, values: np.ndarray) -> np.ndarray:
        """rho of every membrane's block, from the product around its ring; (m, n, k) inputs."""
        m, groups = len(local), len(self.sizes)
        log_scale = np.zeros(m)
        product = None
        for step in range(1, groups + 1):
            g = step % groups  # B_1, B_2, ..., B_{g-1}, then B_0
            rows = slice(self.starts[g], self.starts[g] + self.sizes[g])
            block = np.zeros((m, self.sizes[g], self.sizes[(g - 1) % groups]))
            cols = local[:, rows] - self.starts[(g - 1) % groups]
            np.put_along_axis(block, cols, values[:, rows], axis=2)
            product = block if product is None else block @ product
            peak = np.abs(product).max(axis=(1, 2))
            peak[peak == 0] = 1.0
            product /= peak[:, None, None]
            log_scale += np.log(peak)
        assert product is not None  # a ring has at least one group
        rho = np.abs(np.linalg.eigvals(product)).max(axis=1)
        with np.errstate(divide="ignore"):
            return np.exp((np.log(rho) + log_scale) / groups)


def _distinct(rng: np.random.Generator, rows: int, sizes: np.ndarray, k: int) -> np.ndarray:
    """`k` distinct indices in 0..sizes[r]-1 for each row r, sorted (for gather locality).

    Small ranges draw a key per candidate and keep the k smallest; large ones draw k at a
    time and redraw the rows that repeated one (rare when k is far below the range), so
    memory stays O(rows k) for ranges of thousands.
    """
    widest = int(sizes.max())
    if widest <= 4 * GROUP_MAX:
        keys = rng.random((rows, widest))
        keys[np.arange(widest)[None, :] >= sizes[:, None]] = np.inf
        if k == widest:
            return np.broadcast_to(np.arange(k), (rows, k)).copy()
        return np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    chosen = np.sort(rng.integers(0, sizes[:, None], size=(rows, k)), axis=1)
    while True:
        repeated = np.flatnonzero((np.diff(chosen, axis=1) == 0).any(axis=1))
        if not len(repeated):
            return chosen
        chosen[repeated] = np.sort(rng.integers(0, sizes[repeated, None], size=(len(repeated), k)), axis=1)


def _covering(rng: np.random.Generator, rows: int, width: int, k: int) -> np.ndarray:
    """(rows, k) indices in 0..width-1 that read every index: consecutive shuffles of all of
    them, cut into rows (rows * k >= width by the caller's choice of k)."""
    rounds = -(-rows * k // width)
    order = np.argsort(rng.random((rounds, width)), axis=1).ravel()
    return np.ascontiguousarray(order[: rows * k].reshape(rows, k), dtype=np.uint16)


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
        """Built already: a session on them costs microseconds."""
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
