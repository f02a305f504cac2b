"""The load figures: Locust against one gevent worker, as the README publishes them.

    python -m bench.load [--quick]

1. 1000 live-feed streams (ConcurrencyUser) at once while two heavy streams compute
   (HeavyUser), heartbeats every 1 s: the 99th percentile of the gap between events must stay
   within the interval plus 0.5 s, with no failures.
2. 300 live-feed streams: the 99th percentile of the time to first event must be under 100 ms,
   with no failures. Streams opened once all 300 users run are the figure; those opened while
   Locust spawns users (50 in the same instant every second) are reported beside it.

Each run starts its own server (127.0.0.1, a free port, one worker) and Locust headless with
CSV output; figures come from Locust's CSV. `--quick` runs a tenth of the users for a short
time (a check of the script, not the figures). The last line is one JSON object.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.server import Server

ROOT = Path(__file__).resolve().parent.parent
INTERVAL_S = 1.0


def locust(users: int, spawn_rate: int, seconds: int, classes: list[str], feed_s: int, out: Path) -> dict:
    env_server = {"DTESN_HEARTBEAT_INTERVAL": str(INTERVAL_S), "DTESN_MAX_STREAMS": str(users + 100)}
    server = Server(out.parent, env_server)
    try:
        command = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py",
                   "--headless", "--host", server.url, "-u", str(users), "-r", str(spawn_rate),
                   "-t", f"{seconds}s", "--stop-timeout", str(feed_s + 10), "--only-summary",
                   "--csv", str(out), *classes]
        env = {**os.environ, "LOAD_FEED_SECONDS": str(feed_s)}
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds + feed_s + 120,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    finally:
        server.stop()
    rows = {row["Name"]: row for row in csv.DictReader(Path(f"{out}_stats.csv").open())}
    return {"exit_code": done.returncode, "rows": rows}


def main() -> None:
    quick = "--quick" in sys.argv
    scale = 10 if quick else 1
    with tempfile.TemporaryDirectory() as tmp:
        held = locust(1000 // scale, 100, 20 if quick else 60, ["ConcurrencyUser", "HeavyUser"], 10 if quick else 30,
                      Path(tmp) / "held")
        first = locust(300 // scale, 50, 15 if quick else 45, ["ConcurrencyUser"], 10 if quick else 20,
                       Path(tmp) / "first")
    gap = held["rows"]["concurrency: gap between events"]
    heavy_gap = held["rows"].get("timeout prevention: gap between events", {})
    ttfe = first["rows"]["concurrency: time to first event"]
    # None when every user spawned before its first event (--quick: 30 users at 50 a second).
    ramp = first["rows"].get("concurrency: time to first event (while spawning)")
    result = {
        "streams_held": {
            "users": 1000 // scale, "heavy_users": 2, "heartbeat_interval_s": INTERVAL_S,
            "gap_p99_ms": float(gap["99%"]), "gap_max_ms": float(gap["Max Response Time"]),
            "gaps": int(gap["Request Count"]),
            "heavy_gap_p99_ms": float(heavy_gap["99%"]) if heavy_gap else None,
            "ttfe_p99_ms": float(held["rows"]["concurrency: time to first event"]["99%"]),
            "failures": int(held["rows"]["Aggregated"]["Failure Count"]),
            "goal_gap_p99_ms": (INTERVAL_S + 0.5) * 1000,
        },
        "time_to_first_event": {
            "users": 300 // scale, "ttfe_p50_ms": float(ttfe["50%"]), "ttfe_p99_ms": float(ttfe["99%"]),
            "ttfe_max_ms": float(ttfe["Max Response Time"]), "streams": int(ttfe["Request Count"]),
            "spawning_ttfe_p50_ms": float(ramp["50%"]) if ramp else None,
            "spawning_ttfe_p99_ms": float(ramp["99%"]) if ramp else None,
            "spawning_streams": int(ramp["Request Count"]) if ramp else 0,
            "failures": int(first["rows"]["Aggregated"]["Failure Count"]), "goal_p99_ms": 100.0,
        },
    }
    h, t = result["streams_held"], result["time_to_first_event"]
    print(f"{h['users']} streams + 2 heavy, heartbeat {INTERVAL_S} s: gap p99 {h['gap_p99_ms']:.0f} ms "
          f"(goal <= {h['goal_gap_p99_ms']:.0f}), max {h['gap_max_ms']:.0f} ms over {h['gaps']} gaps; "
          f"heavy streams' gap p99 {h['heavy_gap_p99_ms']} ms; failures {h['failures']}")
    print(f"{t['users']} streams: time to first event p50 {t['ttfe_p50_ms']:.0f} ms, p99 {t['ttfe_p99_ms']:.0f} ms, "
          f"max {t['ttfe_max_ms']:.0f} ms (goal p99 < 100) over {t['streams']} streams; failures {t['failures']}; "
          f"while spawning: p50 {t['spawning_ttfe_p50_ms']} ms, p99 {t['spawning_ttfe_p99_ms']} ms "
          f"over {t['spawning_streams']} streams")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
