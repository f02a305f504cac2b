"""The NumPy stepper: the reference the compiled kernel is tested against.

x <- (1 - a) x + a tanh(W x + C x_parent + [skin] W_in u), for all membranes at once
(synchronous: every membrane reads its parent's state from the previous step).

Steps run in blocks of at most BLOCK_BYTES of per-step data (float inputs and states), so
memory does not grow with the length of a call.

Each row of the trajectory buffer holds a step's state followed by that step's skin drive,
and the connection table has one more row that reads the drive (weight 1 for skin neurons,
0 elsewhere): the gather picks the input up with everything else, one array call fewer per
step than adding it separately. Seven array calls a step, no allocation.
"""

from __future__ import annotations

import numpy as np

from .kernel import BYTE_SCALE
from .reservoir import Reservoir
from .weights import Weights

#: Bytes of per-step data (input frames and states) kept at once.
BLOCK_BYTES = 2 << 20


class ReferenceReservoir(Reservoir):
    def __init__(self, weights: Weights) -> None:
        super().__init__(weights)
        n_total = weights.neurons
        drive_row = np.full((1, n_total), n_total, dtype=weights.sources.dtype)
        skin = weights.input_sources.shape[1]
        drive_row[0, :skin] += np.arange(skin)
        self._sources = np.concatenate([weights.sources, drive_row])
        drive_weight = np.zeros((1, n_total), dtype=self.dtype)
        drive_weight[0, :skin] = 1
        self._values = np.concatenate([weights.values, drive_weight])
        self._gathered = np.empty(self._sources.shape, dtype=self.dtype)
        self._pre = np.empty(n_total, dtype=self.dtype)

    def advance(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        width = max(self.weights.neurons, self.weights.params.frame_size)
        block = max(64, BLOCK_BYTES // (width * self.dtype.itemsize))
        for start in range(0, len(inputs), block):
            part = inputs[start : start + block]
            if part.dtype == np.uint8:
                part = np.divide(part, self.dtype.type(BYTE_SCALE), dtype=self.dtype) - self.dtype.type(1)
            low, high = np.searchsorted(marks, [start, start + len(part)])
            self._advance_block(part, features[start : start + len(part)], marks[low:high] - start, states[low:high])

    def _advance_block(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        w = self.weights
        drive = (inputs[:, w.input_sources] * w.input_values).sum(axis=1)
        steps, n_total = len(drive), w.neurons
        traj = np.zeros((steps + 1, n_total + drive.shape[1]), dtype=self.dtype)
        traj[0, :n_total] = self._state
        traj[:steps, n_total:] = drive
        xs = traj[:, :n_total]
        gathered, pre, sources, values, leak = self._gathered, self._pre, self._sources, self._values, self.weights.leak
        multiply, reduce, tanh, add = np.multiply, np.add.reduce, np.tanh, np.add
        for t in range(steps):
            x = xs[t]
            traj[t].take(sources, None, gathered, "clip")
            multiply(gathered, values, out=gathered)
            reduce(gathered, axis=0, out=pre)
            tanh(pre, out=pre)
            pre -= x
            pre *= leak
            add(x, pre, out=xs[t + 1])
        m, n = self.weights.tree.count, self.weights.params.neurons_per_membrane
        visited = xs[1:]
        reduce(visited.reshape(steps, m, n), axis=2, out=features)
        features /= n
        states[:] = visited[marks]
        self._state[:] = xs[steps]
