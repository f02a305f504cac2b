"""A short Locust run of every scenario against a real server; exits non-zero on any failure.

    python -m loadtests.smoke

Starts gunicorn (as the Procfile does) on 127.0.0.1 and a free port with 1 s heartbeats,
runs Locust headless for RUN_SECONDS with a few users of each scenario, and stops the server
by its PID. `.ci/run` runs it after the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.server import Server

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 15
USERS = 8


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"DTESN_HEARTBEAT_INTERVAL": "1"})
        try:
            env = {**os.environ, "LOAD_FEED_SECONDS": "6", "LOAD_THROUGHPUT_BYTES": str(2 << 20)}
            command = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py",
                       "--headless", "--host", server.url, "-u", str(USERS), "-r", str(USERS),
                       "-t", f"{RUN_SECONDS}s", "--stop-timeout", "10", "--only-summary",
                       "TimeoutPreventionUser", "ThroughputUser", "ConcurrencyUser", "ResumeUser"]
            done = subprocess.run(command, cwd=ROOT, env=env, timeout=RUN_SECONDS + 45)
        finally:
            server.stop()
    print(f"locust smoke run: exit code {done.returncode} ({'ok' if done.returncode == 0 else 'failures'})")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
