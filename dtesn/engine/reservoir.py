"""A network's state and how it advances: block by block, through one of two steppers.

`Reservoir` holds what both steppers share (the state and block-sized input buffers);
`CompiledReservoir` steps with the compiled kernel (`kernel.py`, the default) and
`reference.ReferenceReservoir` with plain NumPy, which the tests hold the kernel to. Input
is converted and advanced one block of at most BLOCK_BYTES of per-step data at a time, so
memory does not grow with the length of a call.
"""

from __future__ import annotations

import numpy as np

from .kernel import compiled_advance
from .params import ReservoirParams
from .weights import Weights, build_weights

#: Bytes of per-step data (input frames, or the reference's states) kept at once.
BLOCK_BYTES = 2 << 20
BYTE_SCALE = 127.5
NO_MARKS = np.empty(0, dtype=np.int64)
NO_MARKS.flags.writeable = False


class Reservoir:
    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.dtype = weights.values.dtype
        width = max(weights.neurons, weights.params.frame_size)
        self.block = max(64, BLOCK_BYTES // (width * self.dtype.itemsize))
        self._state = np.zeros(weights.neurons, dtype=self.dtype)
        self._no_states = np.empty((0, weights.neurons), dtype=self.dtype)

    @property
    def state(self) -> np.ndarray:
        return self._state

    @state.setter
    def state(self, value: np.ndarray) -> None:
        if value.shape != (self.weights.neurons,):
            raise ValueError(f"state must have shape ({self.weights.neurons},)")
        self._state[:] = value

    def advance_frames(self, frames: np.ndarray, features: np.ndarray, marks: np.ndarray = NO_MARKS,
                       states: np.ndarray | None = None) -> None:
        """One step per byte frame (T, F) uint8, u = byte / 127.5 - 1; per-step membrane means
        into `features` (T, membranes), and the state after step `marks[k]` (ascending) into
        `states[k]`."""
        inputs = np.empty((min(self.block, len(frames)), frames.shape[1]), dtype=self.dtype)
        for start in range(0, len(frames), self.block):
            part = frames[start : start + self.block]
            u = inputs[: len(part)]
            np.divide(part, self.dtype.type(BYTE_SCALE), out=u)
            u -= 1
            self._advance_block(u, features, start, marks, states)

    def advance_inputs(self, inputs: np.ndarray, features: np.ndarray, states: np.ndarray | None = None) -> None:
        """One step per float frame (T, F); `states` (T, N), when given, gets every step's state."""
        marks = NO_MARKS if states is None else np.arange(len(inputs), dtype=np.int64)
        for start in range(0, len(inputs), self.block):
            self._advance_block(inputs[start : start + self.block], features, start, marks, states)

    def _advance_block(self, inputs: np.ndarray, features: np.ndarray, start: int, marks: np.ndarray,
                       states: np.ndarray | None) -> None:
        """Steps [start, start + len(inputs)) of a call: its marks, made local to the block."""
        low, high = np.searchsorted(marks, [start, start + len(inputs)])
        block_states = self._no_states if states is None or low == high else states[low:high]
        self.advance(inputs, features[start : start + len(inputs)], marks[low:high] - start, block_states)

    def advance(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        """`len(inputs)` steps; `states[k]` gets the state after step `marks[k]`."""
        raise NotImplementedError


class CompiledReservoir(Reservoir):
    def __init__(self, weights: Weights) -> None:
        super().__init__(weights)
        self._kernel = compiled_advance()
        self._scratch = np.empty((2, weights.neurons), dtype=self.dtype)  # pre-activations and the other state
        self._doubled = np.empty(2 * weights.neurons, dtype=self.dtype)
        frame, widest = weights.params.frame_size, int(weights.group_sizes.max())
        self._repeated = np.empty(frame * -(-(frame + widest) // frame), dtype=self.dtype)  # whole frames, at least F + G

    def advance(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        w = self.weights
        self._kernel(self._state, inputs, w.input_shifts, w.input_values, w.bases, w.values, w.recurrent_fanin,
                     w.group_starts, w.group_sizes, w.leak, features, w.params.neurons_per_membrane, states, marks,
                     self._scratch, self._doubled, self._repeated)


def warm_up(dtypes: tuple[str, ...] = ("float32",)) -> None:
    """Compile the kernel (or load it from numba's cache) for `dtypes` now, before traffic.

    Run through a real two-membrane network, so the compiled signatures are exactly those
    of every later call (numba compiles anew for, say, a read-only array where it saw a
    writable one). Measured: 1.4 s with an empty cache, 0.45 s from the cache, of which
    importing numba is 0.13 s. The server warms float32 only (its one dtype); a float64
    session compiles on first use (about 1 s).
    """
    for name in dtypes:
        reservoir = CompiledReservoir(build_weights(ReservoirParams(esn_size=32, membrane_depth=2, frame_size=2, dtype=name)))
        features = np.empty((1, 2), dtype=reservoir.dtype)
        reservoir.advance_frames(np.zeros((1, 2), np.uint8), features)
        reservoir.advance_inputs(np.zeros((1, 2), reservoir.dtype), features, np.empty((1, 32), reservoir.dtype))
