"""A network's state and how it advances, through one of two steppers.

`Reservoir` holds what both steppers share (the weights and the state) and the two ways in:
byte frames (a session's input) and float frames (research readouts and tests).
`CompiledReservoir` steps with the compiled kernel (`kernel.py`, the default), a whole call
in one kernel call; `reference.ReferenceReservoir` with plain NumPy, which the tests hold
the kernel to.
"""

from __future__ import annotations

import numpy as np

from .kernel import compiled_advance
from .params import ReservoirParams
from .weights import Weights, build_weights

NO_MARKS = np.empty(0, dtype=np.int64)
NO_MARKS.flags.writeable = False


class Reservoir:
    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.dtype = weights.values.dtype
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
        self.advance(frames, features, marks, self._no_states if states is None else states)

    def advance_inputs(self, inputs: np.ndarray, features: np.ndarray, states: np.ndarray | None = None) -> None:
        """One step per float frame (T, F); `states` (T, N), when given, gets every step's state."""
        if states is None:
            self.advance(inputs, features, NO_MARKS, self._no_states)
        else:
            self.advance(inputs, features, np.arange(len(inputs), dtype=np.int64), states)

    def advance(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        """`len(inputs)` steps, on byte (uint8) or float frames; `states[k]` gets the state
        after step `marks[k]`."""
        raise NotImplementedError


class CompiledReservoir(Reservoir):
    def __init__(self, weights: Weights) -> None:
        super().__init__(weights)
        self._kernel = compiled_advance()
        self._scratch = np.empty((2, weights.neurons), dtype=self.dtype)  # pre-activations and the other state
        self._doubled = np.empty(2 * weights.neurons, dtype=self.dtype)
        frame, widest = weights.params.frame_size, int(weights.group_sizes.max())
        self._repeated = np.empty(frame * -(-(frame + widest) // frame), dtype=self.dtype)  # whole frames, at least F + G
        self._no_marks = np.empty(0, dtype=np.int64)  # writable: numba compiles anew for a read-only array

    def advance(self, inputs: np.ndarray, features: np.ndarray, marks: np.ndarray, states: np.ndarray) -> None:
        w = self.weights
        self._kernel(self._state, inputs, w.input_shifts, w.input_values, w.bases, w.values, w.recurrent_fanin,
                     w.group_starts, w.group_sizes, w.leak, features, w.params.neurons_per_membrane, states,
                     marks if len(marks) else self._no_marks, self._scratch, self._doubled, self._repeated)


def warm_up(dtypes: tuple[str, ...] = ("float32",)) -> None:
    """Compile the kernel (or load it from numba's cache) for `dtypes` now, before traffic.

    Run through a real two-membrane network, so the compiled signatures are exactly those
    of every later call (numba compiles anew for, say, a read-only array where it saw a
    writable one: a session's byte frames are read-only views of its input). Measured:
    1.4 s with an empty cache, 0.45 s from the cache, of which importing numba is 0.13 s.
    The server warms float32 only (its one dtype); a float64 session compiles on first use
    (about 1 s).
    """
    for name in dtypes:
        reservoir = CompiledReservoir(build_weights(ReservoirParams(esn_size=32, membrane_depth=2, frame_size=2, dtype=name)))
        features = np.empty((1, 2), dtype=reservoir.dtype)
        reservoir.advance_frames(np.frombuffer(bytes(2), np.uint8).reshape(1, 2), features)
        reservoir.advance_inputs(np.zeros((1, 2), reservoir.dtype), features, np.empty((1, 32), reservoir.dtype))
