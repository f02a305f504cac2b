"""The Redis stores against a real redis-server: the same rules as the embedded ones
(checkpoints kept and capped, datasets whole or not at all, the cap atomic), shared by
every store instance that names the same Redis, and failing soft where the issue says so."""

from __future__ import annotations

import hashlib
import io
import secrets
import threading

import gevent
import numpy as np
import pytest

from dtesn.engine import Snapshot
from dtesn.storage.checkpoints import PER_STREAM, Checkpoint, MemoryCheckpointStore
from dtesn.storage.datasets import DatasetNotFound
from dtesn.storage.errors import StoreFull, StoreUnavailable
from dtesn.storage.redis_checkpoints import RedisCheckpointStore
from dtesn.storage.redis_connection import Warnings, connect
from dtesn.storage.redis_datasets import PART_BYTES, DatasetGone, RedisDatasetStore
from dtesn.storage.source import TruncatedBody


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def client(redis_server):
    c = connect(redis_server.url)
    yield c
    c.close()


def checkpoint(index: int, size: int = 64) -> Checkpoint:
    state = np.arange(size, dtype=np.float32) + index
    return Checkpoint("stream_chunks|1024|p", index, (index + 1) * 1024, f"{index:064x}", Snapshot(state, index * 10, b"ab"))


def test_checkpoints_round_trip_and_thin_out_like_the_memory_store(client, prefix):
    redis_store = RedisCheckpointStore(client, prefix, ttl_s=60, max_bytes=1 << 30, warnings=Warnings())
    memory = MemoryCheckpointStore(ttl_s=60, max_bytes=1 << 30)
    for index in [*range(0, 40, 3), 20, 25, 26]:  # a resume from 20 drops what came after it
        for store in (redis_store, memory):
            store.save("r1", checkpoint(index))
        assert redis_store.writes.flush(5)
    for at_most in (-1, 0, 5, 19, 24, 25, 26, 100):
        got, want = redis_store.latest("r1", at_most), memory.latest("r1", at_most)
        assert (got and got.index) == (want and want.index), at_most
    got = redis_store.latest("r1", 100)
    assert got is not None and got.snapshot.steps == 260 and got.snapshot.pending == b"ab"
    np.testing.assert_array_equal(got.snapshot.state, checkpoint(26).snapshot.state)
    assert (got.stream_key, got.offset, got.input_sha256) == ("stream_chunks|1024|p", 27 * 1024, f"{26:064x}")
    kept = client.hkeys(prefix + "cp:r1")
    assert len(kept) <= PER_STREAM and redis_store.latest("other", 100) is None


def test_the_checkpoint_cap_holds_for_every_instance_together(client, prefix, redis_server):
    one = checkpoint(0, size=1000).to_bytes()
    cap = 3 * len(one) + 100
    instances = [RedisCheckpointStore(connect(redis_server.url), prefix, 60, cap, Warnings()) for _ in range(2)]
    for n in range(6):
        store = instances[n % 2]
        store.save(f"s{n}", checkpoint(0, size=1000))
        assert store.writes.flush(5)
    assert instances[0].nbytes <= cap
    alive = [n for n in range(6) if instances[1].latest(f"s{n}", 0) is not None]
    assert alive == [3, 4, 5]  # the streams that saved least recently went first


def test_checkpoints_expire_after_their_ttl(client, prefix):
    store = RedisCheckpointStore(client, prefix, ttl_s=0.2, max_bytes=1 << 20, warnings=Warnings())
    store.save("r1", checkpoint(3))
    assert store.writes.flush(5) and store.latest("r1", 10) is not None
    gevent.sleep(0.4)
    assert store.latest("r1", 10) is None


def test_a_redis_that_is_down_costs_checkpoints_not_streams(tmp_path):
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path)
    store = RedisCheckpointStore(connect(server.url), "down:", 60, 1 << 20, Warnings())
    server.stop()
    store.save("r1", checkpoint(1))  # returns at once, whatever Redis does
    assert store.writes.flush(10) and store.writes.failed == 1
    assert store.latest("r1", 5) is None  # a resume recomputes
    datasets = RedisDatasetStore(store._client, "down:", 1 << 20, 1 << 22, 60)
    with pytest.raises(StoreUnavailable):
        datasets.create(io.BytesIO(b"x" * 100), 100)
    with pytest.raises(StoreUnavailable):
        connect(server.url)


def dataset_store(client, prefix, cap=1 << 30) -> RedisDatasetStore:
    return RedisDatasetStore(client, prefix, max_bytes=1 << 28, max_total_bytes=cap, ttl_s=60)


def test_a_dataset_in_parts_reads_back_whole_in_pieces_of_any_size(client, prefix):
    data = secrets.token_bytes(2 * PART_BYTES + 12345)
    for size in (len(data), None):  # Content-Length, and chunked
        store = dataset_store(client, prefix)
        dataset = store.create(io.BytesIO(data), size)
        assert dataset.bytes == len(data) and dataset.sha256 == hashlib.sha256(data).hexdigest()
        assert client.hlen(prefix + "ds-data:" + dataset.dataset_id) == 3
        assert store.get(dataset.dataset_id) == dataset
        source, parts = store.open(dataset.dataset_id), []
        while piece := source.read(300_001):
            parts.append(piece)
        assert b"".join(parts) == data and source.size == len(data)
        assert store.total_bytes() >= len(data)


def test_a_failed_upload_leaves_nothing_and_releases_its_reservation(client, prefix):
    class Truncated(io.BytesIO):
        def read(self, n=-1):
            piece = super().read(n)
            if not piece:
                raise TruncatedBody(self.tell(), 5 * PART_BYTES)
            return piece

    store = dataset_store(client, prefix, cap=5 * PART_BYTES)
    with pytest.raises(TruncatedBody):
        store.create(Truncated(b"y" * (2 * PART_BYTES + 5)), 5 * PART_BYTES)
    assert store.total_bytes() == 0
    assert not [k for k in client.scan_iter(prefix + "ds*") if b"ds-upload" in k or b"ds-data" in k or k.endswith(b":ds")]
    assert store.create(io.BytesIO(b"z" * (4 * PART_BYTES)), 4 * PART_BYTES).bytes == 4 * PART_BYTES  # room again


def test_the_cap_holds_under_concurrent_uploads_from_many_instances(redis_server, prefix):
    """Six 4 MB uploads into a 10 MB store, through three store instances at once: two fit."""
    stores = [dataset_store(connect(redis_server.url), prefix, cap=10 << 20) for _ in range(3)]
    results: list = []

    def upload(n: int) -> None:
        try:
            results.append(stores[n % 3].create(io.BytesIO(b"d" * (4 << 20)), 4 << 20))
        except StoreFull as exc:
            results.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(not isinstance(r, StoreFull) for r in results) == 2 and len(results) == 6
    assert stores[0].total_bytes() == 8 << 20


def test_delete_and_expiry(client, prefix):
    store = dataset_store(client, prefix)
    dataset = store.create(io.BytesIO(b"k" * (PART_BYTES + 1)), None)
    source = store.open(dataset.dataset_id)
    source.read(10)
    store.delete(dataset.dataset_id)
    with pytest.raises(DatasetNotFound):
        store.get(dataset.dataset_id)
    with pytest.raises(DatasetGone):  # a stream reading it ends with a clear error event
        while source.read(PART_BYTES):
            pass
    with pytest.raises(DatasetNotFound):
        store.delete(dataset.dataset_id)
    assert store.total_bytes() == 0
    short = RedisDatasetStore(client, prefix, 1 << 20, 1 << 20, ttl_s=0.2)
    gone = short.create(io.BytesIO(b"e" * 1000), 1000)
    gevent.sleep(0.4)
    with pytest.raises(DatasetNotFound):
        short.get(gone.dataset_id)
    assert short.total_bytes() == 0  # expired bytes leave the count


def test_the_redis_url_is_shown_without_its_password():
    from dtesn.storage.redis_connection import redacted

    assert redacted("redis://user:secret@10.0.0.5:6380/2") == "redis://user:***@10.0.0.5:6380/2"
    assert redacted("rediss://:secret@cache.example/0") == "rediss://:***@cache.example/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
