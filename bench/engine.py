"""Engine speed: the compiled kernel against ReservoirPy and our NumPy reference, in one run.

    pip install -r bench/requirements.txt   # ReservoirPy, for the comparison
    python -m bench.engine                  # about a minute

Every comparison alternates short windows of its two sides (`interleaved`), so the shared
machine's noise hits both alike; the best window of each is kept. ReservoirPy is set up as
in the issue: Reservoir(units=N, lr=0.5, sr=0.9, rc_connectivity=6/N, input_dim=64,
dtype=float32), fed the same bytes mapped to [-1, 1]. Prints tables, then one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, as in a gunicorn worker

import json
import threading
import time

import numpy as np

from dtesn.engine import ReferenceReservoir, ReservoirParams, Session, build_weights, warm_up

FRAME = 64
SECONDS = 1.5
ROUNDS = 5
STEPS = 2048
SIZES = (256, 1024, 4096)


def window(step_block, steps_per_call: int, seconds: float) -> float:
    """Steps per second of `step_block`, called until `seconds` have passed."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done == 0:
        step_block()
        done += steps_per_call
    return done / elapsed


def interleaved(a, b, steps: int, rounds: int = ROUNDS) -> tuple[float, float]:
    """Best rate of a and of b over alternating short windows."""
    best_a = best_b = 0.0
    for _ in range(rounds):
        best_a = max(best_a, window(a, steps, SECONDS / rounds))
        best_b = max(best_b, window(b, steps, SECONDS / rounds))
    return best_a, best_b


def reservoirpy(size: int, data: np.ndarray):
    """A block of ReservoirPy's run over the same frames, or None when it is not installed."""
    try:
        from reservoirpy.nodes import Reservoir
    except ImportError:
        return None, None
    U = (data.reshape(-1, FRAME) / 127.5 - 1).astype(np.float32)
    start = time.perf_counter()
    node = Reservoir(units=size, lr=0.5, sr=0.9, rc_connectivity=6 / size, input_dim=FRAME, dtype=np.float32, seed=0)
    node.run(U[:1])
    cold = time.perf_counter() - start
    return (lambda: node.run(U)), cold


def cold_start(params: ReservoirParams) -> float:
    start = time.perf_counter()
    Session(build_weights(params)).feed(bytes(params.frame_size))
    return time.perf_counter() - start


def two_threads(sessions: list[Session], data: bytes, seconds: float) -> float:
    """Steps per second of all `sessions` fed at once, one thread each."""
    counts = [0] * len(sessions)
    deadline = time.perf_counter() + seconds

    def run(i: int) -> None:
        while time.perf_counter() < deadline:
            sessions[i].feed(data)
            counts[i] += STEPS

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sessions))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    started = time.perf_counter()
    warm_up()
    warm_s = time.perf_counter() - started
    data = np.random.default_rng(1).integers(0, 256, FRAME * STEPS, dtype=np.uint8)
    raw = data.tobytes()
    figures: dict = {"frame_size": FRAME, "dtype": "float32", "blas_threads": 1, "warm_up_s": round(warm_s, 3),
                     "sizes": [], "threads": [], "cold_start_s": {}}

    print(f"{'esn_size':>8} {'compiled':>10} {'reservoirpy':>12} {'x rpy':>6} {'numpy ref':>10} {'x ref':>6} "
          f"{'cold_s':>7} {'rpy cold_s':>10}")
    for size in SIZES:
        params = ReservoirParams(esn_size=size, membrane_depth=1, frame_size=FRAME)
        cold = min(cold_start(ReservoirParams(esn_size=size, membrane_depth=1, seed=s)) for s in (11, 12, 13))
        weights = build_weights(params)
        ours, ref = Session(weights), Session(weights, ReferenceReservoir)
        rpy_block, rpy_cold = reservoirpy(size, data)
        ours_rate, ref_rate = interleaved(lambda: ours.feed(raw), lambda: ref.feed(raw), STEPS)
        rpy_rate = None
        if rpy_block is not None:
            ours_again, rpy_rate = interleaved(lambda: ours.feed(raw), rpy_block, STEPS)
            ours_rate = max(ours_rate, ours_again)
            rpy_ratio = ours_again / rpy_rate  # from the same interleaved windows
        row = {"esn_size": size, "steps_per_sec": round(ours_rate), "reference_steps_per_sec": round(ref_rate),
               "ratio_to_reference": round(ours_rate / ref_rate, 2), "cold_start_s": round(cold, 4)}
        if rpy_rate is not None:
            row.update(reservoirpy_steps_per_sec=round(rpy_rate), ratio_to_reservoirpy=round(rpy_ratio, 2),
                       reservoirpy_cold_start_s=round(rpy_cold, 4))
        figures["sizes"].append(row)
        rpy_text = f"{rpy_rate:>12.0f} {rpy_ratio:>6.2f}" if rpy_rate else f"{'-':>12} {'-':>6}"
        rpy_cold_text = f"{rpy_cold:>10.3f}" if rpy_rate else f"{'-':>10}"
        print(f"{size:>8} {ours_rate:>10.0f} {rpy_text} {ref_rate:>10.0f} {ours_rate / ref_rate:>6.2f} {cold:>7.3f} {rpy_cold_text}")

    floor = Session(build_weights(ReservoirParams(esn_size=32, membrane_depth=1, frame_size=FRAME)))
    floor_rate = max(window(lambda: floor.feed(raw), STEPS, SECONDS / ROUNDS) for _ in range(ROUNDS))
    figures["per_step_floor_us"] = round(1e6 / floor_rate, 3)
    print(f"per-step floor (esn_size 32): {1e6 / floor_rate:.2f} us")

    print(f"{'esn_size':>8} {'depth':>5} {'1 thread':>10} {'2 threads':>10} {'scaling':>8}")
    for size, depth in ((1024, 1), (4096, 1), (1024, 4)):
        weights = build_weights(ReservoirParams(esn_size=size, membrane_depth=depth, frame_size=FRAME))
        pair = [Session(weights), Session(weights)]
        one = two = 0.0
        for _ in range(ROUNDS):
            one = max(one, two_threads(pair[:1], raw, SECONDS / ROUNDS))
            two = max(two, two_threads(pair, raw, SECONDS / ROUNDS))
        figures["threads"].append({"esn_size": size, "membrane_depth": depth, "one_thread": round(one),
                                   "two_threads": round(two), "scaling": round(two / one, 2)})
        print(f"{size:>8} {depth:>5} {one:>10.0f} {two:>10.0f} {two / one:>8.2f}")

    worst = {}
    for depth in range(1, 9):
        worst[f"4096x{depth}"] = round(min(cold_start(ReservoirParams(esn_size=4096, membrane_depth=depth, seed=s))
                                           for s in (21, 22, 23)), 4)
    figures["cold_start_s"] = worst
    print("cold start at esn_size 4096 by depth (best of 3):", ", ".join(f"{k} {v:.3f} s" for k, v in worst.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
