"""300 streams opened at once on one worker: how long each waits for its first byte.

    python -m bench.burst

Starts the real server (one gevent worker, 127.0.0.1), then opens STREAMS connections in one
burst: every socket connects and sends its whole request (a small JSON body to
/stream_chunks) before the first answer is read, so the server sees them all at once. Each
stream's time to first byte is measured from the moment the burst began.

The same bursts go, in alternating rounds, to the floor: the same gunicorn worker running a
WSGI app that does nothing (bench/floor_app.py). Its p99 is what gunicorn and gevent cost on
this machine before the kit does anything; the ratio ours / floor is the kit's share, and
compares across days when absolute times do not. Prints p50/p99/max per round and one JSON
object.

    python -m bench.burst --against OTHER_CHECKOUT [--rounds N]

adds a third server, the same worker running OTHER_CHECKOUT's code (e.g. a `git worktree` of
the commit before), to the alternating rounds, and prints the p99 ratio ours / other per round:
on a shared machine the floor moves by half between minutes, so a change is judged against
its own base in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import statistics
import tempfile
import time
from pathlib import Path

from bench import floor_app
from tests.support.server import Server

STREAMS = 300
ROUNDS = 4
BODY = json.dumps({"input_data": "burst " * 40, "esn_size": 256, "membrane_depth": 3}).encode()


def burst(port: int) -> list[float]:
    request = (f"POST /deep_tree_echo/stream_chunks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    sockets = []
    for _ in range(STREAMS):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        sockets.append(s)
    first: dict[object, float] = {}
    deadline = started + 30
    while len(first) < STREAMS and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            first[key.fileobj] = time.monotonic() - started
            selector.unregister(key.fileobj)
    for s in sockets:
        s.close()
    selector.close()
    if len(first) < STREAMS:
        raise RuntimeError(f"only {len(first)} of {STREAMS} streams answered within 30 s")
    return sorted(first.values())


def figures(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[int(0.99 * len(times)) - 1] * 1000, 1),
            "max_ms": round(times[-1] * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout, served beside this one")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    floor_command = floor_app.command("app", "--worker-connections", str(STREAMS + 100))
    env = {"DTESN_MAX_STREAMS": str(STREAMS + 50), "DTESN_WORKER_CONNECTIONS": str(STREAMS + 100)}
    names = ("ours", "other", "floor") if args.against else ("ours", "floor")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            servers["ours"] = Server(Path(tmp), env)
            if args.against:
                servers["other"] = Server(Path(tmp), env, root=args.against.resolve())
            servers["floor"] = Server(Path(tmp), command=floor_command, ready_path="/")
            for server in servers.values():
                burst(server.port)  # warm: weights, rates, the worker's first requests
            for i in range(args.rounds):
                for name in names if i % 2 == 0 else names[::-1]:
                    time.sleep(1)  # the last burst's streams finish
                    rounds[name].append(figures(burst(servers[name].port)))
        finally:
            for server in servers.values():
                server.stop()
    ratios = {name: [round(o["p99_ms"] / b["p99_ms"], 2) for o, b in zip(rounds["ours"], rounds[name])]
              for name in names[1:]}
    for i, (o, f) in enumerate(zip(rounds["ours"], rounds["floor"])):
        other = f"; other p99 {rounds['other'][i]['p99_ms']} ms, ours / other {ratios['other'][i]}" if args.against else ""
        print(f"round {i + 1}: first byte p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, max {o['max_ms']} ms; "
              f"floor p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms; p99 ours / floor {ratios['floor'][i]}{other}")
    summary = {"streams": STREAMS, "rounds": rounds["ours"], "floor": rounds["floor"], "p99_over_floor": ratios["floor"]}
    if args.against:
        summary |= {"other": rounds["other"], "p99_over_other": ratios["other"],
                    "median_p99_over_other": statistics.median(ratios["other"])}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
