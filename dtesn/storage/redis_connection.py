"""The runtime's Redis client (DTESN_REDIS_URL), and what its failures mean to the kit.

redis-py's sockets are the `socket` module's, so under gunicorn's gevent worker (which
monkey-patches before the app is imported) every command waits cooperatively: a slow Redis
delays the greenlet that asked, never the event loop. Every store keeps its own keys under
one prefix (DTESN_REDIS_PREFIX), and its scripts build the names of the keys they touch, so
the kit needs a single Redis (or a primary with replicas), not a Redis Cluster.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import StoreUnavailable

#: A command's answer: a dataset part is 1 MB, which loopback or a LAN returns in milliseconds;
#: past this a Redis is "down" for the kit (a checkpoint is skipped, an upload gets 503).
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
#: One warning per kind of failure at most this often: a Redis that is down fails every
#: checkpoint of every stream, and the log should say so once, not thousands of times.
WARN_EVERY_S = 30.0

log = logging.getLogger("dtesn.redis")


def connect(url: str, check: bool = True) -> redis.Redis:
    """A client for `url`, checked with a PING unless `check` is false; StoreUnavailable (one
    line) when unreachable. Unchecked, the client connects at its first command (a worker
    that a master already checked for: see config/gunicorn.conf.py).

    One immediate retry inside redis-py, not its default 10 with backoff: the retry replaces
    a pooled connection that went stale while Redis restarted (so the first request after a
    restart succeeds); past it each caller has its own answer (recompute, 503), and waiting
    longer would only delay it.
    """
    client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                  retry=Retry(NoBackoff(), 1), health_check_interval=30)
    if not check:
        return client
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise StoreUnavailable(f"cannot reach Redis at {redacted(url)}: {exc}") from None
    return client


def redacted(url: str) -> str:
    """`url` without its password, for logs and /status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Warnings:
    """Rate-limited warnings, one clock per kind of failure."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, kind: str, message: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, float("-inf")) >= WARN_EVERY_S:
            self._last[kind] = now
            log.warning("%s: %s (logged at most once per %g s)", message, exc, WARN_EVERY_S)
