"""The compiled step kernel: all steps of a block in one call, outside the GIL.

The same recurrence as `reference.py` (the NumPy implementation the tests hold it to),
compiled by numba with `nogil=True`, so a second engine thread or the event loop runs
while a block computes. What made it fast, each measured against the NumPy loop:

- one call per block of steps instead of seven NumPy calls per step (7.5-8.6 us a step
  at esn_size 32, whatever the work);
- the gather as a loop per neuron over its K slots, the state kept in two alternating
  buffers (synchronous update), and tanh + leak + the membrane means in a second loop that
  LLVM vectorises: a float32 rational tanh (0.17 ns a value, as fast as NumPy's SIMD tanh;
  libm's `tanhf` called per value costs 24-27 ns; evaluated in float64 it is more exact, 5e-8,
  but 6% slower a step at depth 1) and, for float64, tanh from an exp built of vectorisable
  arithmetic (1.3 ns a value against libm's 15 ns);
- `error_model="numpy"`: the default zero-division check blocks vectorisation;
- the skin's input drive computed a tile of 16 steps at a time, vectorised over the steps
  (a per-step gather of the input slots cost a quarter of a step at esn_size 4096; a
  separate projection pass over a whole block cost as much as the recurrence);
- the membrane means summed in eight running sums (one sum waits on every add: 5 us a
  step at esn_size 4096).

Accuracy: the float32 tanh is within 3.9e-7 of the exact value (NumPy's float32 tanh: 6e-8);
the float64 one is within 2.3e-16 absolute. Kernel states stay within 1e-6 (float32) and 1e-12
(float64) of the reference's over the tested 400 steps; last-bit differences of tanh add up
like a random walk in slow deep membranes (about 7e-7 to 1e-6 after 2048 steps at depth 8,
with either float32 tanh).

Compiled functions are cached on disk by numba (`cache=True`): next to this file, or in
NUMBA_CACHE_DIR when set; a deploy where neither is writable compiles in memory at every
start instead (a warning says so).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import cache

import numpy as np

# Eigen's rational approximation of tanh on [-7.9, 7.9] (Eigen/src/Core/MathFunctionsImpl.h).
_CLAMP = 7.90531110763549805
_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
      1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_TANH_ONE = 19.5  # tanh(x) rounds to 1 in float64 beyond this


LANES = 8
TILE = 16  # steps whose input drive is computed together


def tanh32(v: float) -> np.float32:
    """float32 tanh: Eigen's rational function in float32 arithmetic (8 lanes a vector)."""
    f = np.float32
    x = min(max(v, f(-_CLAMP)), f(_CLAMP))
    x2 = x * x
    p = ((((((f(_P[0]) * x2 + f(_P[1])) * x2 + f(_P[2])) * x2 + f(_P[3])) * x2 + f(_P[4])) * x2 + f(_P[5])) * x2
         + f(_P[6])) * x
    q = ((f(_Q[0]) * x2 + f(_Q[1])) * x2 + f(_Q[2])) * x2 + f(_Q[3])
    return p / q


def tanh64(x: float) -> float:
    """float64 tanh as (1 - e) / (1 + e), e = exp(-2|x|) = 2^-k exp(r): a degree-13 Taylor
    polynomial on |r| <= ln2/2 and 2^-k from k's six bits, all of it vectorisable."""
    y = 2.0 * min(abs(x), _TANH_ONE)
    k = math.floor(y * _INV_LN2 + 0.5)
    r = (k * _LN2_HI - y) + k * _LN2_LO
    e = 1.0 / 6227020800.0
    for c in (479001600.0, 39916800.0, 3628800.0, 362880.0, 40320.0, 5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0):
        e = e * r + 1.0 / c
    bits = int(k)
    e *= 0.5 if bits & 1 else 1.0
    e *= 0.25 if bits & 2 else 1.0
    e *= 0.0625 if bits & 4 else 1.0
    e *= 0.00390625 if bits & 8 else 1.0
    e *= 1.52587890625e-05 if bits & 16 else 1.0
    e *= 2.3283064365386963e-10 if bits & 32 else 1.0
    t = (1.0 - e) / (1.0 + e)
    return t if x >= 0 else -t


def advance(state, inputs, input_sources, input_values, offsets, values, recurrent, parents, leak, features, n,
            trajectory, marks, scratch, tile_inputs, tile_drive):
    """Advance len(inputs) steps from `state` (updated in place).

    x <- x + leak * (tanh(W x + C x_parent + [skin] W_in u_t) - x) for each input frame u_t;
    `features[t]` gets every membrane's mean after step t, and `trajectory[k]` the whole
    state after step `marks[k]` (ascending; none: no states kept). A session marks the ends
    of its chunks, so a whole batch of chunks is one call: the GIL is taken back once per
    call, not once per chunk (with an encoding thread holding it, each taking back waited up
    to the switch interval). Membrane j's neuron i reads state[j*n + offsets[i, k]] for its
    first `recurrent` slots and state[parents[j]*n + offsets[i, k]] for the others; skin
    neuron i (membrane 0, whose coupling slots are unused) reads u_t[input_sources[i, k]].

    The skin's input drive does not depend on the state, so it is computed a tile of TILE
    steps at a time, vectorised over the steps (`tile_inputs` holds the tile's frames
    transposed, `tile_drive` its drive): each input slot's index and weight are loaded once
    per tile instead of once per step (1.2-1.3x the steps/s at depth 1). Every sum still runs
    in one fixed order, so results do not depend on how steps are split into calls (nor on
    the tiling: bitwise the same as a drive summed step by step).
    """
    total, slots = offsets.shape
    membranes = total // n
    skin, fan_in = input_sources.shape
    marked, next_mark = 0, marks[0] if marks.shape[0] > 0 else -1
    pre = scratch[0]
    cur, nxt = state, scratch[1]
    lanes = scratch[2, :LANES]  # a view: an allocation here costs compile time (0.2 s)
    steps, frame = inputs.shape
    for t0 in range(0, steps, TILE):
        width = min(TILE, steps - t0)
        for f in range(frame):
            for s in range(width):
                tile_inputs[f, s] = inputs[t0 + s, f]
        for i in range(skin):
            weight, row = input_values[i, 0], tile_inputs[input_sources[i, 0]]
            for s in range(TILE):
                tile_drive[i, s] = weight * row[s]
            for k in range(1, fan_in):
                weight, row = input_values[i, k], tile_inputs[input_sources[i, k]]
                for s in range(TILE):
                    tile_drive[i, s] += weight * row[s]
        for s in range(width):
            for i in range(skin):
                a = values[i, 0] * cur[offsets[i, 0]]
                for k in range(1, recurrent):
                    a += values[i, k] * cur[offsets[i, k]]
                pre[i] = a + tile_drive[i, s]
            for j in range(1, membranes):
                base, parent = j * n, parents[j] * n
                for i in range(base, base + n):
                    a = values[i, 0] * cur[base + offsets[i, 0]]
                    for k in range(1, recurrent):
                        a += values[i, k] * cur[base + offsets[i, k]]
                    for k in range(recurrent, slots):
                        a += values[i, k] * cur[parent + offsets[i, k]]
                    pre[i] = a
            for i in range(total):  # vectorised: the sums below stay out of this loop
                x = cur[i]
                nxt[i] = x + leak[i] * (_tanh(pre[i]) - x)
            for j in range(membranes):  # LANES running sums: one would wait on every add
                for r in range(LANES):
                    lanes[r] = 0
                for i in range(j * n, j * n + n):
                    lanes[i % LANES] += nxt[i]
                mean = lanes[0]
                for r in range(1, LANES):
                    mean += lanes[r]
                features[t0 + s, j] = mean / n
            if t0 + s == next_mark:
                for i in range(total):
                    trajectory[marked, i] = nxt[i]
                marked += 1
                next_mark = marks[marked] if marked < marks.shape[0] else -1
            cur, nxt = nxt, cur
    if steps % 2:
        for i in range(total):
            state[i] = cur[i]


def _tanh(v):  # replaced by the compiled dispatch on dtype below
    raise NotImplementedError


@cache
def compiled_advance() -> Callable[..., None]:
    """The compiled `advance` (built once per process; from numba's disk cache when it has one)."""
    import numba
    from numba import types
    from numba.extending import overload

    fast = numba.njit(inline="always", error_model="numpy")
    t32, t64 = fast(tanh32), fast(tanh64)

    @overload(_tanh, inline="always")
    def _tanh_for(v):
        if isinstance(v, types.Float):
            return (lambda v: t32(v)) if v.bitwidth == 32 else (lambda v: t64(v))
        return None

    def compile_(fn: Callable) -> Callable:
        options = dict(nogil=True, error_model="numpy", boundscheck=False)
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as exc:  # no writable cache directory: compile in memory at each start
            warnings.warn(f"dtesn: numba cannot cache compiled kernels ({exc}); set NUMBA_CACHE_DIR", stacklevel=2)
            return numba.njit(**options)(fn)

    return compile_(advance)
