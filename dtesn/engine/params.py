"""Reservoir parameters: one frozen, hashable value that names a network exactly.

The ranges live here, as data, so that the web layer reports the same limits the engine
enforces and the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .membranes import membrane_count

MIN_NEURONS_PER_MEMBRANE = 4
DTYPES = ("float32", "float64")


class ParameterError(ValueError):
    """A parameter is out of range; `field` names it so clients can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    integer: bool = True

    def describe(self) -> str:
        if self.integer:
            return f"{int(self.low)}..{int(self.high)}"
        return f"{self.low:g}..{self.high:g}"


#: Accepted range of every numeric parameter (inclusive).
RANGES: dict[str, Range] = {
    "membrane_depth": Range(1, 8),
    "esn_size": Range(32, 4096),
    "frame_size": Range(1, 4096),
    "seed": Range(0, 2**32 - 1),
    "spectral_radius": Range(0.01, 2.0, integer=False),
    "leak_rate": Range(0.01, 1.0, integer=False),
    "leak_decay": Range(0.05, 1.0, integer=False),
    "coupling": Range(0.0, 4.0, integer=False),
    "input_scaling": Range(0.0, 10.0, integer=False),
    "connectivity": Range(1, 64),
    "coupling_fanin": Range(1, 64),
    "input_fanin": Range(1, 4096),
}


@dataclass(frozen=True)
class ReservoirParams:
    """Everything that determines a network's weights and dynamics.

    Defaults keep byte input out of tanh's saturated tails: each skin neuron's input row has
    an expected L2 norm of `input_scaling` (0.5), so for bytes mapped to [-1, 1] the drive
    stays near |0.5|; a spectral radius of 0.9 gives fading memory with a long echo; deeper
    levels leak slower (`leak_rate * leak_decay**(level-1)`), integrating over longer spans.
    `connectivity` is a fixed recurrent fan-in (each neuron reads that many neurons of its own
    membrane), `coupling_fanin` the number of parent neurons each child neuron reads and
    `input_fanin` the bytes of a frame each skin neuron reads (ReservoirPy's default input
    connectivity of 0.1 at frame 64), so a step costs O(N) whatever the size (a fixed small
    fan-in is the usual sparse-ESN recipe).
    """

    membrane_depth: int = 4
    esn_size: int = 512
    frame_size: int = 64
    seed: int = 0
    spectral_radius: float = 0.9
    leak_rate: float = 0.5
    leak_decay: float = 0.7
    coupling: float = 0.5
    input_scaling: float = 0.5
    connectivity: int = 6
    coupling_fanin: int = 2
    input_fanin: int = 6
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name, limits in RANGES.items():
            value = getattr(self, name)
            if limits.integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ParameterError(name, f"{name} must be an integer in {limits.describe()}")
            if not limits.low <= value <= limits.high:
                raise ParameterError(name, f"{name} must be in {limits.describe()}, got {value}")
        if self.dtype not in DTYPES:
            raise ParameterError("dtype", f"dtype must be one of {', '.join(DTYPES)}")
        smallest = max(int(RANGES["esn_size"].low), MIN_NEURONS_PER_MEMBRANE * self.membranes)
        if self.esn_size < smallest:
            raise ParameterError(
                "esn_size",
                f"esn_size {self.esn_size} gives fewer than {MIN_NEURONS_PER_MEMBRANE} neurons per "
                f"membrane for membrane_depth {self.membrane_depth} ({self.membranes} membranes); "
                f"the smallest valid esn_size for that depth is {smallest}",
            )

    @property
    def membranes(self) -> int:
        return membrane_count(self.membrane_depth)

    @property
    def neurons_per_membrane(self) -> int:
        return self.esn_size // self.membranes

    @property
    def neurons(self) -> int:
        """Neurons actually used: the remainder of esn_size / membranes is dropped."""
        return self.neurons_per_membrane * self.membranes

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ReservoirParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(unknown[0], f"unknown parameter {unknown[0]!r}")
        return cls(**values)
