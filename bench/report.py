"""Run every benchmark and write one markdown table of all their figures and ratios.

    python -m bench.report [--quick] [--out bench/REPORT.md]

Each benchmark runs in its own process (one at a time: the machine has 2 cores) and its last
output line, one JSON object, becomes rows of the table: benchmark, figure, value. `--quick`
passes --quick to the benchmarks that have it (load, scale). About 18 minutes in full.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("engine", "stream", "large_dataset", "optimized", "burst", "load", "scale")
QUICK = {"load", "scale"}
#: Fields that name a row of a list rather than measure anything.
LABELS = ("esn_size", "membrane_depth", "frame_size", "chunk_size", "max_chunk_size", "compression_level")


def run(name: str, quick: bool) -> tuple[dict, float]:
    command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick and name in QUICK else [])]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"bench.{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            label = ", ".join(f"{k}={item[k]}" for k in LABELS if k in item) or str(i)
            rest = {k: v for k, v in item.items() if k not in LABELS}
            yield from flatten(rest, f"{path}[{label}]")
    elif isinstance(value, list):
        yield path, ", ".join(map(str, value))
    else:
        yield path, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "REPORT.md")
    args = parser.parse_args()
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for name in BENCHMARKS:
        figures, seconds = run(name, args.quick)
        print(f"bench.{name}: {seconds:.0f} s", file=sys.stderr)
        lines += [f"| {name} | {path} | {value} |" for path, value in flatten(figures)]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = (f"# Benchmark report\n\n`python -m bench.report{' --quick' if args.quick else ''}`, {stamp}, "
            "on this machine (2 cores, shared: compare ratios, not absolute times).\n\n" + "\n".join(lines) + "\n")
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
