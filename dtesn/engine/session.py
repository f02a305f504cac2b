"""A session: one input stream through one network, fed chunk by chunk.

Results do not depend on how the input is split: a frame cut by a chunk boundary waits
in `pending` until the next chunk completes it, and every operation on a step is either
elementwise or of a fixed shape (see `weights.py` for why the input projection is exact).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .reservoir import CompiledReservoir, Reservoir
from .weights import Weights

#: A snapshot's header, also hashed first by every digest: steps, then len(pending).
_HEADER = struct.Struct("<QQ")


@dataclass(frozen=True)
class ChunkResult:
    features: np.ndarray  # (steps, membranes): mean activation of every membrane per step
    energy: list[float]  # RMS of the state per level at the chunk's end
    digest: str  # short hash of the exact session state after the chunk
    steps: int
    states: np.ndarray | None = None  # (steps, N), only when asked for


@dataclass(frozen=True)
class Snapshot:
    """The exact state of a session: enough to continue bit-identically elsewhere."""

    state: np.ndarray
    steps: int
    pending: bytes

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.steps, len(self.pending)) + self.pending + np.ascontiguousarray(self.state).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dtype: np.dtype) -> Snapshot:
        steps, pending_len = _HEADER.unpack_from(data)
        start = _HEADER.size
        pending = data[start : start + pending_len]
        state = np.frombuffer(data[start + pending_len :], dtype=dtype).copy()
        return cls(state=state, steps=int(steps), pending=bytes(pending))


class Session:
    """`stepper` picks how steps are computed: the compiled kernel (the default) or the
    NumPy reference (`reference.ReferenceReservoir`), which the tests compare it to."""

    def __init__(self, weights: Weights, stepper: type[Reservoir] = CompiledReservoir) -> None:
        self.weights = weights
        self.params = weights.params
        self._reservoir = stepper(weights)
        self._dtype = self._reservoir.dtype
        levels = np.repeat(weights.tree.levels, self.params.neurons_per_membrane) - 1
        counts = np.bincount(levels)
        self._by_level = np.argsort(levels, kind="stable")  # neurons, level by level
        self._level_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._level_counts = counts.astype(self._dtype)
        self.steps = 0
        self.pending = b""

    @property
    def state(self) -> np.ndarray:
        return self._reservoir.state.copy()

    def feed(self, data: bytes, final: bool = False) -> ChunkResult:
        """Process every whole frame available after appending `data`.

        With `final`, the input ends here: a partial frame left over is zero-padded and
        processed too.
        """
        return self.feed_many([data], final)[0]

    def feed_many(self, pieces: Sequence[bytes | memoryview], final: bool = False) -> list[ChunkResult]:
        """`feed` for consecutive pieces at once, with a result per piece (bitwise the same)."""
        if not pieces:
            return []
        frame = self.params.frame_size
        buffered = b"".join([self.pending, *pieces])
        if final and len(buffered) % frame:
            buffered += bytes(frame - len(buffered) % frame)
        raw = np.frombuffer(buffered, dtype=np.uint8)
        frames = raw[: len(buffered) // frame * frame].reshape(-1, frame)
        features = np.empty((len(frames), self.weights.tree.count), dtype=self._dtype)
        ends, end = [], len(self.pending)  # each piece's end in `buffered`, and in frames
        for i, piece in enumerate(pieces):
            end = len(buffered) if final and i == len(pieces) - 1 else end + len(piece)
            ends.append((end, end // frame))
        # One kernel call over every frame, keeping the state at each piece's last step: the
        # GIL is taken back once per call, not once per piece (measured: with an encoding
        # thread beside it, stream_chunks at esn 512 went from 0.80 to 0.88-0.91 of the engine
        # alone, with the worker's switch interval at 0.5 ms; see docs/performance.md).
        uptos = np.array([upto for _, upto in ends], dtype=np.int64)
        marks = np.unique(uptos[uptos > 0] - 1)
        # Row 0 holds the state from before the call when the first pieces complete no frame
        # (they keep it); the state after each mark follows.
        before = int(uptos[0] == 0)
        states = np.empty((before + len(marks), self.weights.neurons), dtype=self._dtype)
        states[:before] = self._reservoir.state
        self._reservoir.advance_frames(frames, features, marks, states[before:])
        # The energies of every kept state in one call (per piece, NumPy's call overhead was a
        # third of a 16 KB chunk's time at frame 1024).
        energies = self._energies(states)
        rows = np.where(uptos > 0, np.searchsorted(marks, uptos - 1) + before, 0).tolist()
        results, done, steps = [], 0, self.steps
        for (end, upto), row in zip(ends, rows):
            pending = bytes(buffered[upto * frame : end])
            results.append(ChunkResult(features[done:upto], energies[row], _digest(steps + upto, pending, states[row]),
                                       upto - done))
            done = upto
        self.steps, self.pending = steps + len(frames), pending
        return results

    def finish(self) -> ChunkResult:
        """End of input: the partial frame left over is zero-padded and processed."""
        return self.feed(b"", final=True)

    def run(self, frames: np.ndarray, keep_states: bool = False) -> ChunkResult:
        """Process float frames U[T, F] directly (for research readouts and tests)."""
        frames = np.asarray(frames, dtype=self._dtype)
        if frames.ndim != 2 or frames.shape[1] != self.params.frame_size:
            raise ValueError(f"frames must have shape (T, {self.params.frame_size})")
        steps = len(frames)
        features = np.empty((steps, self.weights.tree.count), dtype=self._dtype)
        states = np.empty((steps, self.weights.neurons), dtype=self._dtype) if keep_states else None
        self._reservoir.advance_inputs(np.ascontiguousarray(frames), features, states)
        self.steps += steps
        return ChunkResult(features, self.energy(), self.digest(), steps, states)

    def energy(self) -> list[float]:
        """RMS of the state per level."""
        return self._energies(self._reservoir.state[None, :])[0]

    def _energies(self, states: np.ndarray) -> list[list[float]]:
        """RMS per level of each row: sums over each level's neurons (reduceat), not a
        matrix product, so a row's energy is bitwise the same however many rows come with it
        (BLAS picks other kernels, and other roundings, by the number of rows)."""
        squares = np.square(states)[:, self._by_level]
        return np.sqrt(np.add.reduceat(squares, self._level_starts, axis=1) / self._level_counts).tolist()

    def digest(self) -> str:
        """blake2b of `snapshot().to_bytes()`, hashed in place (no copy of the state)."""
        return _digest(self.steps, self.pending, self._reservoir.state)

    def snapshot(self) -> Snapshot:
        return Snapshot(state=self.state, steps=self.steps, pending=self.pending)

    def restore(self, snapshot: Snapshot) -> None:
        self._reservoir.state = np.asarray(snapshot.state, dtype=self._dtype)
        self.steps = snapshot.steps
        self.pending = snapshot.pending


def _digest(steps: int, pending: bytes, state: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(_HEADER.pack(steps, len(pending)))  # struct, not np.array: a third of the time per chunk
    h.update(pending)
    h.update(state.data)
    return h.hexdigest()
