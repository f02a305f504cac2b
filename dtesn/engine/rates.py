"""Measured engine speed per parameter set, for estimates that come from real clocks.

Written only by greenlets on the hub; engine threads read it (a dict lookup under the GIL),
so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict

from .params import ReservoirParams

MAX_ENTRIES = 64
SMOOTHING = 0.3


class RateTable:
    """Steps per second per parameter set, smoothed, the least recently measured dropped first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._rates: OrderedDict[ReservoirParams, float] = OrderedDict()

    def record(self, params: ReservoirParams, steps: int, seconds: float) -> None:
        if steps <= 0 or seconds <= 0:
            return
        measured = steps / seconds
        previous = self._rates.pop(params, None)
        self._rates[params] = measured if previous is None else (1 - SMOOTHING) * previous + SMOOTHING * measured
        while len(self._rates) > self._max_entries:
            self._rates.popitem(last=False)

    def steps_per_sec(self, params: ReservoirParams) -> float | None:
        return self._rates.get(params)
