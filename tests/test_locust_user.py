"""dtesn.client.locust.SSEUser from a user's own locustfile, run headless by Locust against
the real server: it fires its measurements as request events, and counts a stream that
does not complete as a failure."""

from __future__ import annotations

import csv
import subprocess
import sys

LOCUSTFILE = '''
from locust import task, constant
from dtesn.client.locust import SSEUser

class Reader(SSEUser):
    wait_time = constant(0.2)

    @task
    def read(self):
        self.stream("/deep_tree_echo/stream_chunks?chunk_size=1024&esn_size=256", [b"x" * 8192], 8192, name="chunks")
        self.stream("/deep_tree_echo/stream_chunks?esn_size=3", [b"x" * 100], 100, name="refused")
'''


def test_a_users_own_sse_user_reports_first_byte_first_event_gaps_and_completion(server, tmp_path):
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(tmp_path / "locustfile.py"), "--headless",
                           "--host", server.url, "-u", "2", "-r", "2", "-t", "4s", "--only-summary",
                           "--csv", str(tmp_path / "run")], capture_output=True, text=True, timeout=60)
    with open(tmp_path / "run_stats.csv") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    for name in ("chunks: time to first byte", "chunks: time to first event", "chunks: gap between events",
                 "chunks: completion"):
        assert rows[name]["Type"] == "SSE" and int(rows[name]["Request Count"]) > 0, name
        assert int(rows[name]["Failure Count"]) == 0, name
    assert int(rows["refused: completion"]["Failure Count"]) == int(rows["refused: completion"]["Request Count"]) > 0
    assert done.returncode == 1  # Locust's exit status: some requests failed (the refused ones)
