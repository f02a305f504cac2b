"""Weights of a DTESN, built once per parameter set and shared read-only by sessions.

Connections are stored in ELLPACK form: every neuron reads exactly K inputs (its
recurrent fan-in from its own membrane, then its coupling fan-in from its parent's
membrane), so a step is O(N K) work whatever the tree's shape, with no Python loop over
membranes and no O(N^2) dense matrix.

Every slot reads a shifted window. Inside a membrane the neurons are split into groups of
at most GROUP_MAX, arranged in a ring, and neuron p of group g reads neuron (p + c) mod size
of group g-1 for `connectivity` distinct shifts c drawn per group (each group-to-group
block a sum of weighted cyclic shifts: every neuron has exactly `connectivity` inputs, and
feeds exactly as many where the groups are of one size, as at every power of two). A child's group reads `coupling_fanin` shifted windows of its
parent's groups, and a skin group `input_fanin` shifted windows of the frame, placed so
that every byte is read. The compiled kernel turns each slot into one contiguous,
vectorised loop; the random sources this replaced (sorted indices per neuron) made every
read a gather: measured in one process, interleaved, 2.7x / 3.2x / 3.4x the steps/s at
esn_size 256 / 1024 / 4096, depth 1, and 4.2x at 1024 depth 4 (see docs/performance.md).
`sources` keeps every slot's neuron explicitly, for the NumPy reference and the checks.

A known spectral radius at any size: the ring's block W is g-cyclic, so its eigenvalues are
the g-th roots of those of one small product P = B_0 B_{g-1} ... B_1 of the ring's
group-to-group blocks: rho(W) = rho(P)^(1/g), one dense eigen-solve of at most 64 x 64 per
membrane, all membranes of a tree in one batched call. Measured: esn_size 4096 at depth 1
built in 10-15 ms (the dense eigen-solve of the whole 4096 block took 42-46 s), and the
radius agrees with a dense solve of the whole block to 1e-9 (tested). A membrane of at
most 64 neurons is one group, solved densely.

A fixed input fan-in, like ReservoirPy's `input_connectivity`, keeps the input's cost O(N)
instead of O(N F): dense at frame 64 it cost as much as the whole recurrence at esn_size
4096. Every sum a step takes runs in one fixed order (see `kernel.py`), so features do not
depend on how the input was split. CONSTRUCTION names how weights are drawn from the
parameters: it is part of every stream's resume key, so a checkpoint made with other
weights for the same parameters is never continued.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .membranes import MembraneTree, membrane_tree
from .params import ReservoirParams

GROUP_MAX = 64
#: Bumped whenever build_weights draws other weights for the same parameters.
CONSTRUCTION = 2


@dataclass(frozen=True)
class Weights:
    params: ReservoirParams
    tree: MembraneTree
    sources: np.ndarray  # (K, N) intp: which neuron's state each input slot reads
    values: np.ndarray  # (K, N) dtype: the weight of each slot (0 where unused)
    recurrent_fanin: int  # the first `recurrent_fanin` rows are W_m, the rest C_m
    group_starts: np.ndarray  # (G,) int64: where each group of a membrane starts in it
    group_sizes: np.ndarray  # (G,) int64
    bases: np.ndarray  # (M, G, K) int64: where each slot of a group starts reading the doubled state (kernel.py)
    input_sources: np.ndarray  # (k_in, n) intp: which byte of a frame each skin input slot reads
    input_values: np.ndarray  # (k_in, n) dtype: the weight of each skin input slot
    input_shifts: np.ndarray  # (G, k_in) int64: the skin's `input_sources` as a shift per group (kernel.py)
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
        n = self.input_sources.shape[1]
        dense = np.zeros((n, self.params.frame_size))
        np.add.at(dense, (np.arange(n)[None, :], self.input_sources), self.input_values.astype(np.float64))
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
    groups = len(ring.sizes)
    membrane_of = np.repeat(np.arange(m), n)
    position = np.arange(n) - ring.starts[ring.group_of]  # each neuron's place in its group

    # Recurrent blocks W_m: group g's neuron p reads (p + c) mod size of group g-1, for
    # `fanin` distinct shifts c drawn per group (see the module's docstring).
    fanin = min(params.connectivity, int(ring.sizes.min()))
    source_sizes, source_starts = ring.sizes[ring.before], ring.starts[ring.before]  # by group
    shifts = _distinct(rng, m * groups, np.tile(source_sizes, m), fanin).reshape(m, groups, fanin)
    reach = shifts[:, ring.group_of] + position[None, :, None]  # (m, n, fanin), below twice the source group
    local = (source_starts[ring.group_of, None] + reach % source_sizes[ring.group_of, None]).reshape(m * n, fanin)
    values = rng.uniform(-1.0, 1.0, size=(m * n, fanin))
    radii = ring.spectral_radii(local.reshape(m, n, fanin), values.reshape(m, n, fanin))
    if np.any(radii == 0.0):  # pragma: no cover - needs a measure-zero draw
        raise RuntimeError("a recurrent block drew a zero spectral radius; choose another seed")
    values *= np.repeat(params.spectral_radius / radii, n)[:, None]
    sources = [(local + (membrane_of * n)[:, None]).T]
    weights = [values.T]
    doubled_start = 2 * (np.arange(m)[:, None] * n + source_starts[None, :])  # (m, groups)
    bases = [doubled_start[:, :, None] + shifts]

    # Coupling blocks C_m: group g of a child reads `coupling_fanin` shifted copies of its
    # parent's groups, each a distinct (group, shift) pair drawn as a place in the membrane.
    if m > 1:
        coupling_fanin = min(params.coupling_fanin, int(ring.sizes.min()))
        place = _distinct(rng, m * groups, np.full(m * groups, n), coupling_fanin).reshape(m, groups, coupling_fanin)
        group, shift = ring.group_of[place], place - ring.starts[ring.group_of[place]]
        coupling = rng.uniform(-1.0, 1.0, size=(m * n, coupling_fanin))
        coupling *= params.coupling * np.sqrt(3.0 / coupling_fanin)
        parent = tree.parents
        is_skin = parent < 0
        read = np.where(is_skin, np.arange(m), parent)  # the skin's slots read itself with weight 0
        coupling[is_skin[membrane_of]] = 0.0
        member = group[:, ring.group_of]  # (m, n, coupling_fanin)
        parent_local = ring.starts[member] + (shift[:, ring.group_of] + position[None, :, None]) % ring.sizes[member]
        sources.append((parent_local.reshape(m * n, coupling_fanin) + (read[membrane_of] * n)[:, None]).T)
        weights.append(coupling.T)
        bases.append(2 * (read[:, None, None] * n + ring.starts[group]) + shift)

    # Input weights W_in (skin only): skin group g's neuron p reads byte (p + e) mod F for
    # `input_fanin` distinct shifts e per group, placed so that every byte is read; each
    # row's expected L2 norm is `input_scaling`.
    input_fanin = min(f, max(params.input_fanin, -(-f // n)))
    input_shifts = _covering_shifts(rng, ring.sizes, f, input_fanin)  # (groups, input_fanin)
    input_sources = (input_shifts[ring.group_of] + position[:, None]) % f  # (n, input_fanin)
    input_values = rng.uniform(-1.0, 1.0, size=(n, input_fanin)) * (params.input_scaling * np.sqrt(3.0 / input_fanin))

    leak = params.leak_rate * params.leak_decay ** (tree.levels[membrane_of] - 1)
    result = Weights(
        params=params,
        tree=tree,
        sources=np.ascontiguousarray(np.concatenate(sources), dtype=np.intp),
        values=np.ascontiguousarray(np.concatenate(weights), dtype=dtype),
        recurrent_fanin=fanin,
        group_starts=ring.starts.astype(np.int64),
        group_sizes=ring.sizes.astype(np.int64),
        bases=np.ascontiguousarray(np.concatenate(bases, axis=2), dtype=np.int64),
        input_sources=np.ascontiguousarray(input_sources.T, dtype=np.intp),
        input_values=np.ascontiguousarray(input_values.T, dtype=dtype),
        input_shifts=input_shifts.astype(np.int64),
        leak=leak.astype(dtype),
        spectral_radii=radii,
    )
    for array in (result.sources, result.values, result.group_starts, result.group_sizes, result.bases,
                  result.input_sources, result.input_values, result.input_shifts, result.leak, result.spectral_radii):
        array.flags.writeable = False
    return result


class _Ring:
    """A membrane's neurons as a ring of groups of at most GROUP_MAX (see the module's docstring)."""

    def __init__(self, n: int) -> None:
        groups = -(-n // GROUP_MAX)
        self.sizes = np.full(groups, n // groups)
        self.sizes[: n % groups] += 1
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.group_of = np.repeat(np.arange(groups), self.sizes)
        self.before = (np.arange(groups) - 1) % groups  # the group each group reads (itself when there is one)

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


def _covering_shifts(rng: np.random.Generator, sizes: np.ndarray, width: int, k: int) -> np.ndarray:
    """(groups, k) shifts in 0..width-1, distinct within each group, such that the windows
    [e, e + size of its group) mod width read every index (sum(sizes) * k >= width by the
    caller's choice of k): slots taken in a random order are laid end to end until the
    windows cover the width, the rest drawn among the shifts their group has not used, and
    all of them turned by one random rotation."""
    groups = len(sizes)
    shifts = np.full((groups, k), -1, dtype=np.int64)
    reach = 0
    for slot in rng.permutation(groups * k):
        if reach >= width:
            break
        shifts[slot // k, slot % k] = reach
        reach += int(sizes[slot // k])
    for g in range(groups):
        free = np.flatnonzero(shifts[g] < 0)
        if len(free):
            unused = np.setdiff1d(np.arange(width), shifts[g])
            shifts[g, free] = rng.choice(unused, size=len(free), replace=False)
    return (shifts + rng.integers(width)) % width


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
