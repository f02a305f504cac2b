"""Datasets in Redis, shared by every worker and instance: an upload through one is
streamed through any other.

A dataset is larger than one Redis value should be, so its bytes are parts of PART_BYTES in
a hash, `<prefix>ds-data:<id>` (part number -> bytes), written as the upload arrives and read
one part at a time as a stream consumes it: memory stays constant both ways. Its description
is the hash `<prefix>ds:<id>`; both expire with the dataset (Redis drops them itself).

The rules of the disk store hold here too, each kept by one script, atomic across instances:
- never visible before complete: parts go to `<prefix>ds-upload:<id>`, renamed to the data
  key and described only by the commit, after the last byte arrived and was hashed;
- the byte cap: an upload reserves its space first (Content-Length, or RESERVE_STEP at a
  time as a chunked body grows) against the stored bytes plus every live reservation;
- leftovers: a reservation is a lease, renewed by each part; an instance that dies mid-upload
  leaves one that lapses after LEASE_S, with its parts (they expire with it);
- expiry: expired datasets leave the byte count when a reservation or /status next looks.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import redis

from .datasets import DATASET_ID, RESERVE_STEP, Dataset, DatasetNotFound
from .errors import StoreFull, StoreUnavailable
from .source import BodyError, InputTooLarge

PART_BYTES = 1 << 20
#: How long a reservation outlives its last part: an upload slower than 1 MB in this long
#: (or an instance gone mid-upload) loses it, and its parts expire with it.
LEASE_S = 600.0

#: Shared by every script: the server's clock, and expired datasets and lapsed uploads out.
_PURGE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry, sizes, stored, reserved, leases, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1]
local function remove(id)
  redis.call('DECRBY', stored, tonumber(redis.call('HGET', sizes, id) or '0'))
  redis.call('HDEL', sizes, id)
  redis.call('ZREM', expiry, id)
  redis.call('DEL', prefix .. 'ds:' .. id, prefix .. 'ds-data:' .. id)
end
local function release(upload)
  redis.call('HDEL', reserved, upload)
  redis.call('ZREM', leases, upload)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do remove(id) end
for _, upload in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
  release(upload)
  redis.call('DEL', prefix .. 'ds-upload:' .. upload)
end
local function held()
  local total = tonumber(redis.call('GET', stored) or '0')
  for _, v in ipairs(redis.call('HVALS', reserved)) do total = total + tonumber(v) end
  return total
end
"""
# ARGV: prefix, upload, wanted bytes, cap, lease ms -> 1, or 0 when the cap has no room
_RESERVE = _PURGE + """
local mine = tonumber(redis.call('HGET', reserved, ARGV[2]) or '0')
if held() - mine + tonumber(ARGV[3]) > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', reserved, ARGV[2], ARGV[3])
redis.call('ZADD', leases, now + tonumber(ARGV[5]), ARGV[2])
return 1
"""
# KEYS[6]: the upload's parts. ARGV: prefix, upload, part number, bytes, lease ms -> 0 when the lease lapsed
_PART = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if not redis.call('HGET', KEYS[4], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[6], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[6], ARGV[5])
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[5]), ARGV[2])
return 1
"""
# KEYS[6..8]: parts, data, description. ARGV: prefix, id, bytes, sha256, ttl ms -> now (ms), or 0 when lapsed
_COMMIT = _PURGE + """
if not redis.call('HGET', reserved, ARGV[2]) then return 0 end
release(ARGV[2])
local ttl = tonumber(ARGV[5])
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('RENAME', KEYS[6], KEYS[7])
  redis.call('PEXPIRE', KEYS[7], ttl)
end
redis.call('HSET', KEYS[8], 'bytes', ARGV[3], 'sha256', ARGV[4], 'created_at', now, 'expires_at', now + ttl)
redis.call('PEXPIRE', KEYS[8], ttl)
redis.call('ZADD', expiry, now + ttl, ARGV[2])
redis.call('HSET', sizes, ARGV[2], ARGV[3])
redis.call('INCRBY', stored, ARGV[3])
return now
"""
# ARGV: prefix, upload
_ABORT = _PURGE + """
release(ARGV[2])
redis.call('DEL', prefix .. 'ds-upload:' .. ARGV[2])
return 1
"""
# ARGV: prefix, id -> 1, or 0 when there was no such dataset
_DELETE = _PURGE + """
local existed = redis.call('EXISTS', prefix .. 'ds:' .. ARGV[2])
if redis.call('HEXISTS', sizes, ARGV[2]) == 1 then remove(ARGV[2]) end
return existed
"""
# ARGV: prefix -> bytes held (stored and reserved)
_TOTAL = _PURGE + """
return held()
"""


class DatasetGone(BodyError):
    def __init__(self) -> None:
        super().__init__("the dataset was deleted or expired while this stream read it")


class DatasetUnreadable(BodyError):
    recoverable = True  # the checkpoints before it stay: resume once Redis is back

    def __init__(self, exc: Exception) -> None:
        super().__init__(f"the dataset store stopped answering while this stream read it ({exc})")


class RedisSource:
    """A dataset's bytes, fetched a part at a time as they are read."""

    def __init__(self, client: redis.Redis, key: str, size: int) -> None:
        self.size: int | None = size
        self._client = client
        self._key = key
        self._part = 0
        self._buffer = memoryview(b"")
        self._left = size

    def read(self, n: int) -> bytes:
        out = []
        while n > 0 and self._left > 0:
            if not self._buffer:
                try:
                    part = self._client.hget(self._key, str(self._part))
                except redis.RedisError as exc:
                    raise DatasetUnreadable(exc) from None
                if not isinstance(part, bytes):  # None: the dataset is gone
                    raise DatasetGone
                self._buffer, self._part = memoryview(part), self._part + 1
            piece, self._buffer = self._buffer[: min(n, self._left)], self._buffer[min(n, self._left) :]
            out.append(piece)
            n -= len(piece)
            self._left -= len(piece)
        return b"".join(out)

    def close(self) -> None:
        pass


class RedisDatasetStore:
    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str, max_bytes: int, max_total_bytes: int, ttl_s: float) -> None:
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.ttl_s = ttl_s
        self._client = client
        self._prefix = prefix
        self._index = [prefix + name for name in ("ds-expiry", "ds-sizes", "ds-bytes", "ds-reserved", "ds-leases")]
        self._scripts = {name: client.register_script(text) for name, text in
                         (("reserve", _RESERVE), ("part", _PART), ("commit", _COMMIT), ("abort", _ABORT),
                          ("delete", _DELETE), ("total", _TOTAL))}

    def create(self, stream: BinaryIO, size: int | None) -> Dataset:
        """Copy a body into Redis in parts, hashing it on the way; the same errors as the
        disk store's (StoreUnavailable when Redis fails), and nothing of a failed upload stays."""
        dataset_id = secrets.token_urlsafe(24)
        parts_key = self._prefix + "ds-upload:" + dataset_id
        digest, written, part, buffer = hashlib.sha256(), 0, 0, bytearray()
        committed = False
        try:
            reserved = self._reserve(dataset_id, size if size is not None else RESERVE_STEP)
            while piece := stream.read(PART_BYTES if size is None else min(PART_BYTES, size - written)):
                written += len(piece)  # the body's own errors (client gone, BodyError) pass through
                if written > self.max_bytes:
                    raise InputTooLarge(self.max_bytes)
                if written > reserved:
                    reserved = self._reserve(dataset_id, max(written, reserved + RESERVE_STEP))
                digest.update(piece)
                buffer += piece
                if len(buffer) >= PART_BYTES:
                    self._write_part(dataset_id, parts_key, part, bytes(buffer))
                    part, buffer = part + 1, bytearray()
            if buffer:
                self._write_part(dataset_id, parts_key, part, bytes(buffer))
            now_ms = self._run("commit", [parts_key, self._data_key(dataset_id), self._prefix + "ds:" + dataset_id],
                               [dataset_id, written, digest.hexdigest(), int(self.ttl_s * 1000)])
            if not now_ms:
                raise StoreUnavailable("the upload's reservation lapsed before it completed; upload it again")
            committed = True
        finally:
            if not committed:
                self._abort(dataset_id)
        created = now_ms / 1000
        return Dataset(dataset_id, written, digest.hexdigest(), created, created + self.ttl_s)

    def get(self, dataset_id: str) -> Dataset:
        if not DATASET_ID.fullmatch(dataset_id):
            raise DatasetNotFound(dataset_id)
        with _unavailable():
            fields = self._client.hgetall(self._prefix + "ds:" + dataset_id)
        if not fields:
            raise DatasetNotFound(dataset_id)
        values = {_text(key): _text(value) for key, value in fields.items()}
        return Dataset(dataset_id, int(values["bytes"]), values["sha256"], int(values["created_at"]) / 1000,
                       int(values["expires_at"]) / 1000)

    def open(self, dataset_id: str) -> RedisSource:
        return RedisSource(self._client, self._data_key(dataset_id), self.get(dataset_id).bytes)

    def delete(self, dataset_id: str) -> None:
        if not DATASET_ID.fullmatch(dataset_id) or not self._run("delete", [], [dataset_id]):
            raise DatasetNotFound(dataset_id)

    def total_bytes(self) -> int:
        """Bytes held for every instance: stored datasets plus the reservations of uploads under way."""
        return int(self._run("total", [], []))

    def _reserve(self, upload: str, wanted: int) -> int:
        if not self._run("reserve", [], [upload, wanted, self.max_total_bytes, int(LEASE_S * 1000)]):
            raise StoreFull
        return wanted

    def _write_part(self, upload: str, key: str, number: int, data: bytes) -> None:
        if not self._run("part", [key], [upload, number, data, int(LEASE_S * 1000)]):
            raise StoreUnavailable("the upload's reservation lapsed before it completed; upload it again")

    def _abort(self, upload: str) -> None:
        """Best effort: a Redis that is down now loses the lease later (LEASE_S)."""
        try:
            self._scripts["abort"](keys=self._index, args=[self._prefix, upload])
        except redis.RedisError:
            pass

    def _data_key(self, dataset_id: str) -> str:
        return self._prefix + "ds-data:" + dataset_id

    def _run(self, script: str, keys: list[str], args: list) -> int:
        with _unavailable():
            return self._scripts[script](keys=[*self._index, *keys], args=[self._prefix, *args])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"the dataset store (Redis) is not answering: {exc}") from None
