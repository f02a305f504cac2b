"""The state update, advanced over a block of steps with preallocated buffers.

x <- (1 - a) x + a tanh(W x + C x_parent + [skin] W_in u), for all membranes at once
(synchronous: every membrane reads its parent's state from the previous step, so coupling
flows down the tree one level per step).
"""

from __future__ import annotations

import numpy as np

from .weights import Weights

#: Bytes of per-step state kept at once; longer inputs are advanced block by block.
BLOCK_BYTES = 2 << 20


class Reservoir:
    """One network's state plus the scratch buffers that make a step allocation-free."""

    def __init__(self, weights: Weights, state: np.ndarray | None = None) -> None:
        self.weights = weights
        self.dtype = weights.values.dtype
        n_total = weights.neurons
        self.block = max(64, BLOCK_BYTES // (n_total * self.dtype.itemsize))
        self._trajectory = np.zeros((self.block + 1, n_total), dtype=self.dtype)
        self._gathered = np.empty(weights.sources.shape, dtype=self.dtype)
        self._pre = np.empty(n_total, dtype=self.dtype)
        if state is not None:
            self.state = state

    @property
    def state(self) -> np.ndarray:
        return self._trajectory[0]

    @state.setter
    def state(self, value: np.ndarray) -> None:
        if value.shape != (self.weights.neurons,):
            raise ValueError(f"state must have shape ({self.weights.neurons},)")
        self._trajectory[0] = value

    def advance(self, drive: np.ndarray, features: np.ndarray, states: np.ndarray | None = None) -> None:
        """Advance len(drive) steps; write per-step membrane means into `features`.

        `drive` is the skin's input projection, (T, n); `features` is (T, membranes);
        `states`, when given, (T, N), receives every step's full state.
        """
        w, traj, gathered, pre = self.weights, self._trajectory, self._gathered, self._pre
        sources, values, leak = w.sources, w.values, w.leak
        multiply, reduce, tanh, add = np.multiply, np.add.reduce, np.tanh, np.add
        skin = pre[: drive.shape[1]]
        m = w.tree.count
        for start in range(0, len(drive), self.block):
            block = drive[start : start + self.block]
            steps = len(block)
            for t in range(steps):  # the hot loop: eight array calls, no allocation
                x = traj[t]
                x.take(sources, None, gathered, "clip")  # the method skips np.take's wrapper; clip skips a copy
                multiply(gathered, values, out=gathered)
                reduce(gathered, axis=0, out=pre)
                skin += block[t]
                tanh(pre, out=pre)
                pre -= x
                pre *= leak
                add(x, pre, out=traj[t + 1])
            visited = traj[1 : steps + 1]
            np.mean(visited.reshape(steps, m, -1), axis=2, out=features[start : start + steps])
            if states is not None:
                states[start : start + steps] = visited
            traj[0] = traj[steps]
