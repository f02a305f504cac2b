"""The spool of a raw body: whatever way the body goes (memory, the file, memory again), the
pump reads it back whole and in order."""

from __future__ import annotations

import itertools

import gevent
import numpy as np

from dtesn.storage import spool
from dtesn.storage.source import BytesSource
from dtesn.storage.spool import Spooled


class Pausing(BytesSource):
    """A body that stops arriving for a while after `pause_at` bytes (a slow client)."""

    def __init__(self, data: bytes, pause_at: int) -> None:
        super().__init__(data)
        self._pause_at = pause_at

    def read(self, n: int) -> bytes:
        if self._pos >= self._pause_at > 0:
            self._pause_at = 0
            gevent.sleep(0.05)
        return super().read(n)


def test_the_body_comes_back_in_order_through_memory_the_file_and_memory_again(monkeypatch):
    monkeypatch.setattr(spool, "MEMORY_BYTES", 20_000)
    data = np.random.default_rng(1).bytes(400_000)
    spooled = Spooled(Pausing(data, pause_at=200_000))
    sizes = itertools.cycle([1, 5000, 12288, 70000, 333])
    out = []
    read = 0
    while block := spooled.read(next(sizes)):
        out.append(block)
        read += len(block)
        if read < 150_000:
            gevent.sleep(0.001)  # a reader behind the body: it goes to the file
    went_to_file = spooled._written
    spooled.close()
    assert b"".join(out) == data
    assert 0 < went_to_file < len(data) - 20_000  # some in the file, the rest in memory after the pause
