"""The compiled step kernel: all steps of a session's call in one call, outside the GIL.

The same recurrence as `reference.py` (the NumPy implementation the tests hold it to),
compiled by numba with `nogil=True`, so a second engine thread or the event loop runs
while it computes. What made it fast, each measured against the NumPy loop:

- one call for all the steps of a call instead of seven NumPy calls per step (7.5-8.6 us a step
  at esn_size 32, whatever the work);
- every slot of a group a shifted window of one source (see `weights.py`), so each slot is
  one contiguous loop over the group's neurons that LLVM vectorises; with the random
  sources this replaced, every read was a gather and the input drive a tile of 16 steps
  a neuron (measured in one process, interleaved: 2.7x / 3.2x / 3.4x the steps/s at
  esn_size 256 / 1024 / 4096, depth 1). Each loop runs over views (`target = pre[a:b]`,
  `for p in range(target.shape[0])`): indexing `pre[start + p]` instead kept LLVM from
  vectorising (it cannot tell that start + p is not negative) and so did the 16-step tile;
- the state kept in two alternating buffers (synchronous update) and in `doubled`, each
  group twice in a row, so no window wraps around inside its loop;
- tanh + leak in a separate loop that LLVM vectorises: a float32 rational tanh (0.17 ns a
  value, as fast as NumPy's SIMD tanh; libm's `tanhf` called per value costs 24-27 ns;
  evaluated in float64 it is more exact, 5e-8, but 6% slower a step at depth 1) and, for
  float64, tanh from an exp built of vectorisable arithmetic (1.3 ns a value against
  libm's 15 ns). At esn_size 1024, depth 1, a step of about 3.7 us is a third each the
  input windows, the recurrent windows and tanh, with 0.4 us for `doubled`;
- `error_model="numpy"`: the default zero-division check blocks vectorisation;
- the membrane means summed in eight running sums held in registers (one sum waits on
  every add: 5 us a step at esn_size 4096).

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
#: A byte b of input is the value b / BYTE_SCALE - 1, in [-1, 1].
BYTE_SCALE = 127.5


LANES = 8


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


def advance(state, inputs, input_shifts, input_values, bases, values, recurrent, group_starts, group_sizes, leak,
            features, n, trajectory, marks, scratch, doubled, repeated):
    """Advance len(inputs) steps from `state` (updated in place).

    x <- x + leak * (tanh(W x + C x_parent + [skin] W_in u_t) - x) for each input frame u_t:
    a float row of `inputs`, or for a byte row u = byte / 127.5 - 1, converted here in the
    state's dtype (the same roundings as NumPy's divide and subtract: bitwise the same
    states). The conversion rides on the copy into `repeated` that every step makes anyway,
    and a session's call is one kernel call with no float copy of its input (measured,
    alternating old and new in rounds: feed_many 1.10-1.20x at frame 1024, unchanged at
    frame 64).
    `features[t]` gets every membrane's mean after step t, and `trajectory[k]` the whole
    state after step `marks[k]` (ascending; none: no states kept). A session marks the ends
    of its chunks, so a whole batch of chunks is one call: the GIL is taken back once per
    call, not once per chunk (with an encoding thread holding it, each taking back waited up
    to the switch interval).

    Every slot of a group reads a shifted copy of one window, so each is one contiguous
    loop over the group's neurons that LLVM vectorises, with no gather and no wrap-around
    inside the loop: neuron p of group g (membrane j) gets values[k, i] * x[(p + c) mod size]
    of its source group, for the first `recurrent` slots the group before it in j, for the
    others a group of j's parent; a skin neuron's input slot gets input_values[k, p] *
    u_t[(p + e) mod F]. `doubled` holds every group twice in a row (group at S of size G:
    doubled[2S + q] = x[S + q mod G]) and `repeated` the frame, repeated (repeated[q] =
    u_t[q mod F]), so slot k reads from bases[j, g, k] and input_shifts[g, k] on. Every sum
    runs in one fixed order, so results do not depend on how steps are split into calls.
    """
    total = state.shape[0]
    membranes = total // n
    groups = group_starts.shape[0]
    slots = values.shape[0]
    fan_in = input_shifts.shape[1]
    marked, next_mark = 0, marks[0] if marks.shape[0] > 0 else -1
    pre = scratch[0]
    cur, nxt = state, scratch[1]
    steps, frame = inputs.shape
    for t in range(steps):
        u = inputs[t]
        for q0 in range(0, repeated.shape[0], frame):
            run = repeated[q0 : q0 + frame]
            for q in range(run.shape[0]):
                run[q] = _input(u[q], pre[0])
        for j in range(membranes):
            for g in range(groups):
                start, size = j * n + group_starts[g], group_sizes[g]
                group, first, second = cur[start : start + size], doubled[2 * start :], doubled[2 * start + size :]
                for p in range(group.shape[0]):
                    first[p] = group[p]
                    second[p] = group[p]
        for i in range(total):
            pre[i] = 0
        for g in range(groups):  # the skin's input windows
            start, size = group_starts[g], group_sizes[g]
            target = pre[start : start + size]
            for k in range(fan_in):
                weight, read = input_values[k, start : start + size], repeated[input_shifts[g, k] : input_shifts[g, k] + size]
                for p in range(target.shape[0]):
                    target[p] += weight[p] * read[p]
        for j in range(membranes):
            used = recurrent if j == 0 else slots  # the skin's coupling slots are unused
            for g in range(groups):
                start, size = j * n + group_starts[g], group_sizes[g]
                target = pre[start : start + size]
                for k in range(used):
                    weight, read = values[k, start : start + size], doubled[bases[j, g, k] : bases[j, g, k] + size]
                    for p in range(target.shape[0]):
                        target[p] += weight[p] * read[p]
        for i in range(total):  # vectorised: the sums below stay out of this loop
            x = cur[i]
            nxt[i] = x + leak[i] * (_tanh(pre[i]) - x)
        for j in range(membranes):
            features[t, j] = _mean(nxt[j * n : j * n + n])
        if t == next_mark:
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


def mean(x):
    """The mean of `x` from eight running sums (one sum waits on every add: 5 us a step at
    esn_size 4096), kept in registers so LLVM makes them one vector; the order is fixed."""
    z = x[0] - x[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = z
    whole = x.shape[0] - x.shape[0] % LANES
    for q in range(0, whole, LANES):
        a0 += x[q]
        a1 += x[q + 1]
        a2 += x[q + 2]
        a3 += x[q + 3]
        a4 += x[q + 4]
        a5 += x[q + 5]
        a6 += x[q + 6]
        a7 += x[q + 7]
    for q in range(whole, x.shape[0]):
        a0 += x[q]
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) / x.shape[0]


def _mean(x):  # replaced by the compiled `mean` below
    raise NotImplementedError


def _input(v, like):  # replaced below: a byte becomes byte / BYTE_SCALE - 1 in like's dtype
    raise NotImplementedError


@cache
def compiled_advance() -> Callable[..., None]:
    """The compiled `advance` (built once per process; from numba's disk cache when it has one)."""
    import numba
    from numba import types
    from numba.extending import overload

    fast = numba.njit(inline="always", error_model="numpy")
    t32, t64, averager = fast(tanh32), fast(tanh64), fast(mean)

    @overload(_tanh, inline="always")
    def _tanh_for(v):
        if isinstance(v, types.Float):
            return (lambda v: t32(v)) if v.bitwidth == 32 else (lambda v: t64(v))
        return None

    @overload(_mean, inline="always")
    def _mean_for(x):
        return lambda x: averager(x)

    @overload(_input, inline="always")
    def _input_for(v, like):
        if isinstance(v, types.Integer):
            cast = np.float32 if like.bitwidth == 32 else np.float64
            scale, one = cast(BYTE_SCALE), cast(1)
            return lambda v, like: cast(v) / scale - one
        return lambda v, like: v

    def compile_(fn: Callable) -> Callable:
        options = dict(nogil=True, error_model="numpy", boundscheck=False)
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as exc:  # no writable cache directory: compile in memory at each start
            warnings.warn(f"dtesn: numba cannot cache compiled kernels ({exc}); set NUMBA_CACHE_DIR", stacklevel=2)
            return numba.njit(**options)(fn)

    return compile_(advance)
