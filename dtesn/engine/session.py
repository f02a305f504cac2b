"""A session: one input stream through one network, fed chunk by chunk.

Results do not depend on how the input is split: a frame cut by a chunk boundary waits
in `pending` until the next chunk completes it, and every operation on a step is either
elementwise or of a fixed shape (see `weights.py` for why the input projection is exact).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .reservoir import Reservoir
from .weights import Weights

BYTE_SCALE = 127.5


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
        header = np.array([self.steps, len(self.pending)], dtype="<u8").tobytes()
        return header + self.pending + np.ascontiguousarray(self.state).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dtype: np.dtype) -> "Snapshot":
        steps, pending_len = np.frombuffer(data[:16], dtype="<u8").tolist()
        pending = data[16 : 16 + pending_len]
        state = np.frombuffer(data[16 + pending_len :], dtype=dtype).copy()
        return cls(state=state, steps=int(steps), pending=bytes(pending))


class Session:
    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.params = weights.params
        self._reservoir = Reservoir(weights)
        self._dtype = self._reservoir.dtype
        units = weights.input_units
        # u = byte / 127.5 - 1, so W_in u = scale * (units^T byte) / 127.5 - scale * units^T 1
        self._byte_gain = self._dtype.type(weights.input_scale / BYTE_SCALE)
        self._byte_offset = (-weights.input_scale * units.sum(axis=0, dtype=np.float64)).astype(self._dtype)
        self._float_input = (units * weights.input_scale).astype(self._dtype)
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
        frame = self.params.frame_size
        buffered = self.pending + data if self.pending else data
        if final and len(buffered) % frame:
            buffered = bytes(buffered) + bytes(frame - len(buffered) % frame)
        whole = len(buffered) - len(buffered) % frame
        self.pending = bytes(buffered[whole:])
        return self._run_bytes(memoryview(buffered)[:whole])

    def finish(self) -> ChunkResult:
        """End of input: the partial frame left over is zero-padded and processed."""
        return self.feed(b"", final=True)

    def run(self, frames: np.ndarray, keep_states: bool = False) -> ChunkResult:
        """Process float frames U[T, F] directly (for research readouts and tests)."""
        frames = np.asarray(frames, dtype=self._dtype)
        if frames.ndim != 2 or frames.shape[1] != self.params.frame_size:
            raise ValueError(f"frames must have shape (T, {self.params.frame_size})")
        return self._advance(frames @ self._float_input, keep_states)

    def _run_bytes(self, data: bytes | memoryview) -> ChunkResult:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, self.params.frame_size)
        drive = raw.astype(self._dtype) @ self.weights.input_units  # exact: integers below 2**24
        drive *= self._byte_gain
        drive += self._byte_offset
        return self._advance(drive, keep_states=False)

    def _advance(self, drive: np.ndarray, keep_states: bool) -> ChunkResult:
        steps = len(drive)
        features = np.empty((steps, self.weights.tree.count), dtype=self._dtype)
        states = np.empty((steps, self.weights.neurons), dtype=self._dtype) if keep_states else None
        self._reservoir.advance(drive, features, states)
        self.steps += steps
        return ChunkResult(features, self.energy(), self.digest(), steps, states)

    def energy(self) -> list[float]:
        levels = self.weights.tree.levels
        n = self.params.neurons_per_membrane
        squares = np.square(self._reservoir.state.astype(np.float64)).reshape(-1, n).sum(axis=1)
        per_level = np.bincount(levels - 1, weights=squares) / (np.bincount(levels - 1) * n)
        return np.sqrt(per_level).tolist()

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        h.update(self.snapshot().to_bytes())
        return h.hexdigest()

    def snapshot(self) -> Snapshot:
        return Snapshot(state=self.state, steps=self.steps, pending=self.pending)

    def restore(self, snapshot: Snapshot) -> None:
        self._reservoir.state = np.asarray(snapshot.state, dtype=self._dtype)
        self.steps = snapshot.steps
        self.pending = snapshot.pending
