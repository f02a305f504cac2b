"""Measured engine speed per parameter set, for estimates that come from real clocks.

Only greenlets on the hub touch it (never pool threads), so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict

from ..engine import ReservoirParams

_MAX_ENTRIES = 64
_SMOOTHING = 0.3
_rates: OrderedDict[ReservoirParams, float] = OrderedDict()


def record(params: ReservoirParams, steps: int, seconds: float) -> None:
    if steps <= 0 or seconds <= 0:
        return
    measured = steps / seconds
    previous = _rates.pop(params, None)
    _rates[params] = measured if previous is None else (1 - _SMOOTHING) * previous + _SMOOTHING * measured
    while len(_rates) > _MAX_ENTRIES:
        _rates.popitem(last=False)


def steps_per_sec(params: ReservoirParams) -> float | None:
    return _rates.get(params)
