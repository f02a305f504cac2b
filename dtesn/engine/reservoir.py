"""The state update, advanced over a block of steps with preallocated buffers.

x <- (1 - a) x + a tanh(W x + C x_parent + [skin] W_in u), for all membranes at once
(synchronous: every membrane reads its parent's state from the previous step, so coupling
flows down the tree one level per step).

Each row of the trajectory buffer holds a step's state followed by that step's skin drive,
and the connection table has one more row that reads the drive (weight 1 for skin neurons,
0 elsewhere): the gather picks the input up with everything else, one array call fewer per
step than adding it separately.
"""

from __future__ import annotations

import numpy as np

from .weights import Weights

#: Bytes of per-step state kept at once; longer inputs are advanced block by block.
BLOCK_BYTES = 2 << 20


class Reservoir:
    """One network's state plus the scratch buffers that make a step allocation-free."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.dtype = weights.values.dtype
        n_total, n_skin = weights.neurons, weights.input_units.shape[1]
        self.block = max(64, BLOCK_BYTES // (n_total * self.dtype.itemsize))
        # The per-step buffer grows to the longest call, up to `block` rows: a stream of small
        # chunks keeps a few KB instead of BLOCK_BYTES (hundreds of streams per worker).
        self._trajectory = np.zeros((2, n_total + n_skin), dtype=self.dtype)
        self._bind()
        drive_row = np.full((1, n_total), n_total, dtype=weights.sources.dtype)
        drive_row[0, :n_skin] += np.arange(n_skin)
        self._sources = np.concatenate([weights.sources, drive_row])
        drive_weight = np.zeros((1, n_total), dtype=self.dtype)
        drive_weight[0, :n_skin] = 1
        self._values = np.concatenate([weights.values, drive_weight])
        self._gathered = np.empty(self._sources.shape, dtype=self.dtype)
        self._pre = np.empty(n_total, dtype=self.dtype)

    def _bind(self) -> None:
        n_total = self.weights.neurons
        self._states = self._trajectory[:, :n_total]
        self._drives = self._trajectory[:, n_total:]

    def _reserve(self, steps: int) -> None:
        """Room for `steps` steps (at most `block`), keeping the current state."""
        rows = len(self._trajectory) - 1
        if steps <= rows:
            return
        grown = np.zeros((min(self.block, max(steps, 2 * rows)) + 1, self._trajectory.shape[1]), dtype=self.dtype)
        grown[0] = self._trajectory[0]
        self._trajectory = grown
        self._bind()

    @property
    def state(self) -> np.ndarray:
        return self._states[0]

    @state.setter
    def state(self, value: np.ndarray) -> None:
        if value.shape != (self.weights.neurons,):
            raise ValueError(f"state must have shape ({self.weights.neurons},)")
        self._states[0] = value

    def advance(self, drive: np.ndarray, features: np.ndarray, states: np.ndarray | None = None) -> None:
        """Advance len(drive) steps; write per-step membrane means into `features`.

        `drive` is the skin's input projection, (T, n); `features` is (T, membranes);
        `states`, when given, (T, N), receives every step's full state.
        """
        self._reserve(len(drive))
        traj, xs, gathered, pre = self._trajectory, self._states, self._gathered, self._pre
        sources, values, leak = self._sources, self._values, self.weights.leak
        multiply, reduce, tanh, add = np.multiply, np.add.reduce, np.tanh, np.add
        m = self.weights.tree.count
        n = self.weights.params.neurons_per_membrane
        for start in range(0, len(drive), self.block):
            block = drive[start : start + self.block]
            steps = len(block)
            self._drives[:steps] = block
            for t in range(steps):  # the hot loop: seven array calls, no allocation
                x = xs[t]
                traj[t].take(sources, None, gathered, "clip")  # the method skips np.take's wrapper
                multiply(gathered, values, out=gathered)
                reduce(gathered, axis=0, out=pre)
                tanh(pre, out=pre)
                pre -= x
                pre *= leak
                add(x, pre, out=xs[t + 1])
            visited = xs[1 : steps + 1]
            out = features[start : start + steps]
            reduce(visited.reshape(steps, m, n), axis=2, out=out)
            out /= n  # a mean, as np.mean computes it, without its Python wrapper
            if states is not None:
                states[start : start + steps] = visited
            xs[0] = xs[steps]
