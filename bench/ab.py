"""Is a change faster through the real server? This checkout against another, rounds alternating.

    git worktree add /tmp/base HEAD~1
    python -m bench.ab /tmp/base [--config goal|defaults|ceiling|chunks] [--input pattern|text] [--mb 32] [--rounds 8]
    git worktree remove /tmp/base

`--env NAME=VALUE` (repeatable) sets an environment variable for this checkout's server only:
with a worktree of the same commit as the other, it A/Bs a setting instead of a change.

Both checkouts run under gunicorn + gevent (one worker each, 127.0.0.1, each with its own
config/gunicorn.conf.py and code), and /stream_large_dataset streams of the same body go to
one then the other, the order flipping every round, so the shared machine's noise hits both.
Two figures a round: MB/s of input by the client's clock, and the worker's CPU per MB (user +
system time from /proc, which drifts less than wall time on a busy machine). Prints every
round, the medians, and this checkout / the other's as ratios; the last line is one JSON
object. The configurations are bench.large_dataset's (goal, defaults, ceiling), and
bench.stream's first (`chunks`: /stream_chunks at esn 512 depth 4, JSON events).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from bench import large_dataset, stream
from dtesn.client.duplex import pattern
from tests.support.server import ROOT, Server

Through = Callable[[Server, int, Callable[[int], Iterable[bytes]]], float]  # bytes/s of a stream of body(size)
INPUTS: dict[str, Callable[[int], Iterable[bytes]]] = {"pattern": pattern, "text": large_dataset.english_blocks}


def _large_dataset(config: dict) -> Through:
    return lambda server, size, body: large_dataset.through_server(server, config, size, body)


CONFIGS: dict[str, Through] = {
    "goal": _large_dataset(large_dataset.GOAL),
    "defaults": _large_dataset(large_dataset.DEFAULT),
    "ceiling": _large_dataset(large_dataset.CEILING),
    "chunks": lambda server, size, body: stream.through_server(server, stream.CONFIGS[0], size, body),
}


def one_stream(server: Server, through: Through, size: int, body: Callable[[int], Iterable[bytes]]) -> tuple[float, float]:
    """(MB/s, worker CPU ms per MB) of one stream of `body(size)`, checked to have completed."""
    rate, worker_cpu, _ = large_dataset.with_cpu(server, size, lambda: through(server, size, body))
    return rate / 1e6, worker_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="another checkout of this repository")
    parser.add_argument("--config", choices=CONFIGS, default="goal")
    parser.add_argument("--mb", type=int, default=32, help="MiB of input per stream")
    parser.add_argument("--input", choices=INPUTS, default="pattern",
                        help="the body: the benchmarks' repeating bytes, or the project's English prose")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="for this checkout's server only")
    args = parser.parse_args()
    if bad := [e for e in args.env if "=" not in e]:
        parser.error(f"--env wants NAME=VALUE, got {bad[0]!r}")
    this_env = dict(e.split("=", 1) for e in args.env)
    other = args.other.resolve()
    if not (other / "config" / "gunicorn.conf.py").is_file():
        parser.error(f"{other} is not a checkout of this repository (no config/gunicorn.conf.py)")
    through, size, body = CONFIGS[args.config], args.mb << 20, INPUTS[args.input]
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "this": Server(Path(tmp), env=this_env),
            # Started in the other checkout: gunicorn puts its starting directory first on
            # sys.path, ahead of PYTHONPATH (until 2026-12-04 this started here, with a
            # PYTHONPATH and --chdir to the other checkout, and so ran this checkout twice).
            "other": Server(Path(tmp), env={"PYTHONPATH": str(other)}, root=other),
        }
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        try:
            for name, root in (("this", ROOT), ("other", other)):
                running_in = Path(os.readlink(f"/proc/{servers[name].worker_pids()[0]}/cwd"))
                if running_in.resolve() != root.resolve():
                    raise SystemExit(f"bench.ab: {name}'s worker runs in {running_in}, not {root}")
            for server in servers.values():
                one_stream(server, through, 1 << 20, body)  # weights and rates first
            for k in range(args.rounds):
                for name in (("this", "other") if k % 2 == 0 else ("other", "this")):
                    rounds[name].append(one_stream(servers[name], through, size, body))
                (this_mb_s, this_cpu), (other_mb_s, other_cpu) = rounds["this"][-1], rounds["other"][-1]
                print(f"round {k}: this {this_mb_s:.1f} MB/s {this_cpu:.2f} ms CPU/MB, "
                      f"other {other_mb_s:.1f} MB/s {other_cpu:.2f} ms CPU/MB, MB/s ratio {this_mb_s / other_mb_s:.3f}")
        finally:
            for server in servers.values():
                server.stop()
    medians = {name: {"mb_s": round(statistics.median(r[0] for r in rows), 2),
                      "cpu_ms_per_mb": round(statistics.median(r[1] for r in rows), 3)} for name, rows in rounds.items()}
    ratios = [t[0] / o[0] for t, o in zip(rounds["this"], rounds["other"])]
    figures = {"config": args.config, "input": args.input, "input_mb": args.mb, "rounds": args.rounds, "env": this_env, "medians": medians,
               "mb_s_ratio_median_of_rounds": round(statistics.median(ratios), 3),
               "mb_s_ratio_rounds_above_1": sum(r > 1 for r in ratios),
               "cpu_per_mb_ratio": round(medians["this"]["cpu_ms_per_mb"] / medians["other"]["cpu_ms_per_mb"], 3)}
    print(f"medians: this {medians['this']['mb_s']} MB/s {medians['this']['cpu_ms_per_mb']} ms CPU/MB; "
          f"other {medians['other']['mb_s']} MB/s {medians['other']['cpu_ms_per_mb']} ms CPU/MB")
    print(f"this / other: MB/s {figures['mb_s_ratio_median_of_rounds']} (median of rounds; above 1 in "
          f"{figures['mb_s_ratio_rounds_above_1']} of {args.rounds}), CPU per MB {figures['cpu_per_mb_ratio']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
