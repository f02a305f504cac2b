"""Engine speed against a textbook dense NumPy leaky ESN, measured in one run.

    python -m bench.engine            # the full grid (about a minute: esn_size 4096 depth 1
                                      # spends ~30 s in its one-off eigen-solve)
    python -m bench.engine --quick    # 256 and 1024 only

Prints a table of ratios and, last, one JSON object with every figure.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, as in a gunicorn worker

import argparse
import json
import time

import numpy as np

from dtesn.engine import ReservoirParams, Session, build_weights

FRAME = 64
SECONDS = 1.0
ROUNDS = 5


def window(step_block, steps_per_call: int, seconds: float) -> float:
    """Steps per second of `step_block`, called until `seconds` have passed."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done == 0:
        step_block()
        done += steps_per_call
    return done / elapsed


def interleaved(a, b, steps_per_call: tuple[int, int], rounds: int = ROUNDS) -> tuple[float, float]:
    """Best rate of a and of b over alternating short windows: the shared machine's noise
    hits both alike, so their ratio holds even when absolute rates drift."""
    best_a = best_b = 0.0
    for _ in range(rounds):
        best_a = max(best_a, window(a, steps_per_call[0], SECONDS / rounds))
        best_b = max(best_b, window(b, steps_per_call[1], SECONDS / rounds))
    return best_a, best_b


def textbook(size: int, data: np.ndarray):
    """A block of the textbook loop x = (1-a)x + a tanh(W x + W_in u), dense float32."""
    rng = np.random.default_rng(0)
    W = (rng.uniform(-1, 1, (size, size)) * (rng.random((size, size)) < 0.1)).astype(np.float32)
    W *= np.float32(0.9 / max(1e-9, np.abs(np.linalg.eigvals(W[:64, :64])).max()))  # scale is irrelevant to speed
    W_in = rng.uniform(-0.1, 0.1, (size, FRAME)).astype(np.float32)
    a = np.float32(0.5)
    U = (data.reshape(-1, FRAME) / 127.5 - 1).astype(np.float32)
    state = {"x": np.zeros(size, np.float32)}

    def block() -> None:
        x = state["x"]
        for u in U:
            x = (1 - a) * x + a * np.tanh(W @ x + W_in @ u)
        state["x"] = x

    return block


def cold_start(params: ReservoirParams) -> float:
    start = time.perf_counter()
    Session(build_weights(params)).feed(bytes(params.frame_size))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip esn_size 4096")
    args = parser.parse_args()
    sizes = [256, 1024] if args.quick else [256, 1024, 4096]
    data = np.random.default_rng(1).integers(0, 256, FRAME * 512, dtype=np.uint8)
    figures: dict = {"frame_size": FRAME, "dtype": "float32", "blas_threads": 1, "grid": []}
    print(f"{'esn_size':>8} {'depth':>5} {'membranes':>9} {'steps/s':>10} {'textbook':>10} {'ratio':>6} {'cold_s':>7}")
    for size in sizes:
        book_block = textbook(size, data)
        steps = len(data) // FRAME
        for depth in (1, 4, 6):
            params = ReservoirParams(esn_size=size, membrane_depth=depth, frame_size=FRAME)
            cold = cold_start(params)
            session = Session(build_weights(params))
            ours, book = interleaved(lambda: session.feed(data.tobytes()), book_block, (steps, steps))
            row = {
                "esn_size": size, "membrane_depth": depth, "membranes": params.membranes,
                "steps_per_sec": round(ours), "textbook_steps_per_sec": round(book),
                "ratio": round(ours / book, 2), "cold_start_s": round(cold, 4),
            }
            figures["grid"].append(row)
            print(f"{size:>8} {depth:>5} {params.membranes:>9} {ours:>10.0f} {book:>10.0f} {ours / book:>6.2f} {cold:>7.3f}")
    figures["cold_start_s"] = {
        "1024x4": round(min(cold_start(ReservoirParams(esn_size=1024, membrane_depth=4, seed=s)) for s in (11, 12, 13)), 4),
        "4096x8": round(min(cold_start(ReservoirParams(esn_size=4096, membrane_depth=8, seed=s)) for s in (11, 12, 13)), 4),
    }
    print(f"cold start (best of 3): 1024x4 {figures['cold_start_s']['1024x4']:.3f} s, 4096x8 {figures['cold_start_s']['4096x8']:.3f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
