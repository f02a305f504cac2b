"""Checkpoints in Redis: a resume that lands on any worker or instance continues from the
newest checkpoint instead of recomputing from the start.

Per stream one hash, `<prefix>cp:<request id>`, chunk index -> Checkpoint.to_bytes(), kept
like the memory store keeps them (at most PER_STREAM, spaced about geometrically, newer ones
than a new save dropped), expiring `ttl_s` after the stream's last save. The byte cap holds
for every instance together: a sorted set of streams by last save and a byte counter, all
updated by one script per save, so that concurrent saves from many workers never overshoot
it or lose count. A save is handed to BackgroundWrites (the stream never waits for Redis); a
lookup runs before the response starts and, when Redis fails, answers "no checkpoint" (the
resume recomputes) with a warning.
"""

from __future__ import annotations

import redis

from .background import BackgroundWrites
from .checkpoints import PER_STREAM, Checkpoint
from .redis_connection import Warnings

_SAVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local rid, index, ttl, cap, keep, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]),
    tonumber(ARGV[6]), ARGV[7]
local streams, sizes, total = KEYS[2], KEYS[3], KEYS[4]
local function drop(stream)
  redis.call('DECRBY', total, tonumber(redis.call('HGET', sizes, stream) or '0'))
  redis.call('HDEL', sizes, stream)
  redis.call('ZREM', streams, stream)
  redis.call('DEL', prefix .. 'cp:' .. stream)
end
for _, stream in ipairs(redis.call('ZRANGEBYSCORE', streams, '-inf', now - ttl)) do drop(stream) end
local indexes = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local i = tonumber(field)
  if i >= index then redis.call('HDEL', KEYS[1], field) else table.insert(indexes, i) end
end
redis.call('HSET', KEYS[1], index, ARGV[3])
table.insert(indexes, index)
table.sort(indexes)
while #indexes > keep do
  local newest, best, crowding = indexes[#indexes], nil, nil
  for k = 2, #indexes - 1 do
    local c = (indexes[k + 1] - indexes[k - 1]) / (newest - indexes[k])
    if crowding == nil or c < crowding then best, crowding = k, c end
  end
  redis.call('HDEL', KEYS[1], indexes[best])
  table.remove(indexes, best)
end
local size = 0
for _, i in ipairs(indexes) do size = size + redis.call('HSTRLEN', KEYS[1], i) end
redis.call('INCRBY', total, size - tonumber(redis.call('HGET', sizes, rid) or '0'))
redis.call('HSET', sizes, rid, size)
redis.call('ZADD', streams, now, rid)
redis.call('PEXPIRE', KEYS[1], ttl)
while tonumber(redis.call('GET', total) or '0') > cap do
  local oldest = redis.call('ZRANGE', streams, 0, 0)[1]
  if not oldest then break end
  drop(oldest)
end
return size
"""

_LATEST = """
local best = nil
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local i = tonumber(field)
  if i <= tonumber(ARGV[1]) and (best == nil or i > best) then best = i end
end
if best == nil then return false end
return redis.call('HGET', KEYS[1], best)
"""


class RedisCheckpointStore:
    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: float, max_bytes: int, warnings: Warnings) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.writes = BackgroundWrites("checkpoint write", warnings)
        self._client = client
        self._prefix = prefix
        self._warnings = warnings
        self._save = client.register_script(_SAVE)
        self._latest = client.register_script(_LATEST)
        self._index_keys = [prefix + "cp-streams", prefix + "cp-sizes", prefix + "cp-bytes"]

    @property
    def nbytes(self) -> int:
        """Bytes of checkpoints held for every instance (0 when Redis cannot say)."""
        try:
            return int(self._client.get(self._prefix + "cp-bytes") or 0)
        except redis.RedisError:
            return 0

    def save(self, request_id: str, checkpoint: Checkpoint) -> None:
        blob = checkpoint.to_bytes()
        keys = [self._prefix + "cp:" + request_id, *self._index_keys]
        args: list[str | int | bytes] = [request_id, checkpoint.index, blob, max(1, int(self.ttl_s * 1000)), self.max_bytes, PER_STREAM,
                self._prefix]
        self.writes.submit(request_id, lambda: self._save(keys=keys, args=args))

    def latest(self, request_id: str, at_most: int) -> Checkpoint | None:
        try:
            blob = self._latest(keys=[self._prefix + "cp:" + request_id], args=[at_most])
        except redis.RedisError as exc:
            self._warnings.warn("checkpoint read", "a resume could not read its checkpoint, so it recomputes", exc)
            return None
        if not blob:
            return None
        try:
            return Checkpoint.from_bytes(blob)
        except (ValueError, KeyError, TypeError) as exc:  # another version's format: recompute
            self._warnings.warn("checkpoint format", "a checkpoint in Redis could not be read, so its resume recomputes", exc)
            return None
