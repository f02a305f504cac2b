"""A plain gevent program that streams DTESN events while its own greenlets keep running.

    python examples/gevent_program.py [MEGABYTES]

A ticker greenlet wakes every 10 ms and records how late it was; meanwhile `dtesn.events`
computes a few megabytes on engine threads. The program prints one JSON line: the events by
type, the final digest, and the ticker's worst lateness.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after patching, as every gevent program does
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402

import dtesn  # noqa: E402
import dtesn.engine  # noqa: E402

TICK_S = 0.010


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    data = bytes(range(256)) * int(megabytes * 4096)
    worst = [0.0]
    running = [True]

    def ticker() -> None:
        while running[0]:
            started = time.monotonic()
            gevent.sleep(TICK_S)
            worst[0] = max(worst[0], time.monotonic() - started - TICK_S)

    # Compile the step kernel (or load it from numba's cache) before the work starts, as the
    # server does in its master: compiling holds the GIL for tens of milliseconds to seconds.
    dtesn.engine.warm_up()
    tick = gevent.spawn(ticker)
    kinds: Counter[str] = Counter()
    digest = None
    for event in dtesn.events(data, esn_size=4096, membrane_depth=1, chunk_size=8192, heartbeat_interval=0.2):
        kinds[event["type"]] += 1
        digest = event.get("final_digest", digest)
    running[0] = False
    tick.join()
    print(json.dumps({"input_bytes": len(data), "events": dict(kinds), "final_digest": digest,
                      "ticker_worst_late_ms": round(worst[0] * 1000, 1)}))


if __name__ == "__main__":
    main()
