"""Engine threads give a starved event loop its turn (`offload.let_loop_run`).

Run in a gevent-patched subprocess: the test process itself is not patched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
from gevent import monkey; monkey.patch_all()
import time
import gevent
from dtesn.streaming import offload

hub = gevent.get_hub()
seen = []

def starved():
    offload._turns.last = 0.0  # the loop looks as if it has not turned for a long time
    hub.loop.run_callback_threadsafe(seen.append, "work the loop had pending")
    offload.let_loop_run()
    return list(seen)

def fresh():
    started = time.monotonic()
    offload.let_loop_run()
    return time.monotonic() - started

offload.submit(fresh).get()  # starts the loop's turn stamps
gevent.sleep(2 * offload.TURN_S)
print("stamped", time.monotonic() - offload._turns.last < offload.STARVED_S)
print("fresh", offload.submit(fresh).get() < 0.001)
print("starved", offload.submit(starved).get())
offload._turns.last = 0.0
offload.let_loop_run()  # on the loop's own thread: returns at once, never waits for itself
print("loop thread ok")
"""


def test_a_starved_loop_runs_its_pending_work_before_the_engine_thread_goes_on():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "stamped True",
        "fresh True",
        "starved ['work the loop had pending']",
        "loop thread ok",
    ]
