"""Uploaded inputs on disk, so that every stream works with a plain GET (browser EventSource).
(With DTESN_REDIS_URL they live in Redis instead: redis_datasets.py, the same interface.)

A dataset is two files in one directory: `<id>` (the bytes) and `<id>.json` (size, sha256,
expiry), both written under temporary names and renamed into place, so that every worker of
an instance (they share the directory) sees a dataset whole or not at all. Ids are 32
URL-safe characters from `secrets`: a dataset id is its own access token.

The store's byte cap holds under any concurrency, across the workers that share the
directory: an upload reserves its space before writing (its Content-Length, or for a chunked
body RESERVE_STEP at a time as it grows), under an exclusive lock on the directory's `.lock`
file, against the datasets stored plus every live reservation. Before, six concurrent 4 MB
uploads into a 10 MB store all succeeded. A reservation and a partial file carry their
worker's pid, so what a killed worker left behind is swept when a store opens.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import StoreFull, StoreUnavailable
from .source import InputSource, InputTooLarge

DATASET_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_PIECE = 1 << 20
#: A chunked upload reserves store space this much at a time as it grows.
RESERVE_STEP = 8 << 20
#: Leftovers of a live worker's upload: `.<id>.<pid>.part` (bytes) and `.<id>.<pid>.reserve`.
_LEFTOVER = re.compile(r"\.([A-Za-z0-9_-]{32})\.([0-9]+)\.(part|reserve)")
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
#: Expired datasets are looked for at most this often (each look lists the directory).
PURGE_EVERY_S = 60.0


class DatasetNotFound(KeyError):
    pass


@dataclass(frozen=True)
class Dataset:
    dataset_id: str
    bytes: int
    sha256: str
    created_at: float
    expires_at: float

    def to_json(self) -> dict:
        return {**asdict(self), "expires_at": _iso(self.expires_at), "created_at": _iso(self.created_at)}


class FileSource:
    """A dataset's bytes as an InputSource; the open file survives a DELETE meanwhile."""

    def __init__(self, path: Path, size: int) -> None:
        self._file: BinaryIO = path.open("rb")
        self.size: int | None = size

    def read(self, n: int) -> bytes:
        return self._file.read(n)

    def close(self) -> None:
        self._file.close()


class DatasetStore(Protocol):
    """What the API needs of a dataset store: this disk's (DiskDatasetStore) or Redis's
    (redis_datasets.RedisDatasetStore), chosen by DTESN_REDIS_URL."""

    kind: str
    max_bytes: int
    max_total_bytes: int

    def create(self, stream: BinaryIO, size: int | None) -> Dataset: ...

    def get(self, dataset_id: str) -> Dataset: ...

    def open(self, dataset_id: str) -> InputSource: ...

    def delete(self, dataset_id: str) -> None: ...

    def total_bytes(self) -> int: ...


class DiskDatasetStore:
    kind = "disk"

    def __init__(self, directory: Path, max_bytes: int, max_total_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._purged_at = float("-inf")
        usable_directory(directory)
        self.sweep()

    def create(self, stream: BinaryIO, size: int | None) -> Dataset:
        """Copy a body to disk, hashing it on the way; never holds more than a piece in memory.

        Raises InputTooLarge past `max_bytes`, StoreFull when the cap or the disk has no room,
        StoreUnavailable when the directory cannot be written; the body's own errors
        (source.BodyError) pass through. Whatever fails, nothing of the upload stays.
        """
        self.purge()
        dataset_id = secrets.token_urlsafe(24)
        stem = f".{dataset_id}.{os.getpid()}"
        partial, reservation = self.directory / f"{stem}.part", self.directory / f"{stem}.reserve"
        digest, written = hashlib.sha256(), 0
        try:
            reserved = self._reserve(reservation, 0, size if size is not None else RESERVE_STEP)
            with _disk_errors():
                out = partial.open("wb", buffering=0)  # unbuffered: closing flushes nothing that could fail
            with out:
                while piece := stream.read(_PIECE if size is None else min(_PIECE, size - written)):
                    written += len(piece)  # the body's own errors (client gone, BodyError) pass through
                    if written > self.max_bytes:
                        raise InputTooLarge(self.max_bytes)
                    if written > reserved:
                        reserved = self._reserve(reservation, reserved, max(written, reserved + RESERVE_STEP))
                    digest.update(piece)
                    with _disk_errors():
                        out.write(piece)
            now = self._clock()
            dataset = Dataset(dataset_id, written, digest.hexdigest(), now, now + self.ttl_s)
            with _disk_errors():
                partial.rename(self.directory / dataset_id)
                try:
                    _write_atomically(self.directory / f"{dataset_id}.json", json.dumps(asdict(dataset)))
                except BaseException:
                    _discard(self.directory / dataset_id)
                    raise
        finally:
            _discard(partial)
            _discard(reservation)
        return dataset

    def _reserve(self, reservation: Path, held: int, wanted: int) -> int:
        """Grow this upload's reservation from `held` to `wanted` bytes, or raise StoreFull."""
        with _disk_errors(), self._locked():
            if self.total_bytes() - held + wanted > self.max_total_bytes:
                raise StoreFull
            _write_atomically(reservation, str(wanted))
        return wanted

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sweep(self) -> int:
        """Remove what killed workers left: partial files and reservations of dead pids, and a
        dataset's bytes whose description never got written. How many files went."""
        removed = 0
        for path in self.directory.iterdir():
            match = _LEFTOVER.fullmatch(path.name)
            orphan = DATASET_ID.fullmatch(path.name) and not path.with_name(f"{path.name}.json").exists()
            temporary = not match and path.name.startswith(".") and path.name.endswith(".part")
            if (match and not _alive(int(match.group(2)))) or ((orphan or temporary) and _older_than(path, 60.0)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def get(self, dataset_id: str) -> Dataset:
        if not DATASET_ID.fullmatch(dataset_id):
            raise DatasetNotFound(dataset_id)
        try:
            dataset = Dataset(**json.loads((self.directory / f"{dataset_id}.json").read_text()))
        except (OSError, ValueError, TypeError):
            raise DatasetNotFound(dataset_id) from None
        if dataset.expires_at <= self._clock():
            self._remove(dataset_id)
            raise DatasetNotFound(dataset_id)
        return dataset

    def open(self, dataset_id: str) -> FileSource:
        dataset = self.get(dataset_id)
        try:
            return FileSource(self.directory / dataset_id, dataset.bytes)
        except OSError:
            raise DatasetNotFound(dataset_id) from None

    def delete(self, dataset_id: str) -> None:
        self.get(dataset_id)
        self._remove(dataset_id)

    def total_bytes(self) -> int:
        """Bytes held: stored datasets plus the reservations of uploads under way."""
        total = 0
        for path in self.directory.iterdir():
            try:
                if DATASET_ID.fullmatch(path.name):
                    total += path.stat().st_size
                elif path.name.endswith(".reserve") and _LEFTOVER.fullmatch(path.name):
                    total += int(path.read_text() or 0)
            except (OSError, ValueError):  # gone meanwhile, or being rewritten
                continue
        return total

    def purge(self, force: bool = False) -> int:
        """Remove expired datasets (at most every PURGE_EVERY_S unless forced); how many."""
        now = self._clock()
        if not force and now - self._purged_at < PURGE_EVERY_S:
            return 0
        self._purged_at = now
        removed = 0
        for meta in self.directory.glob("*.json"):
            try:
                expired = json.loads(meta.read_text())["expires_at"] <= now
            except (OSError, ValueError, KeyError):
                continue
            if expired:
                self._remove(meta.stem)
                removed += 1
        return removed

    def _remove(self, dataset_id: str) -> None:
        (self.directory / f"{dataset_id}.json").unlink(missing_ok=True)
        (self.directory / dataset_id).unlink(missing_ok=True)


def usable_directory(directory: Path) -> None:
    """Create the directory if need be and check it takes a file; StoreUnavailable otherwise
    (start-up turns it into one line naming DTESN_DATASET_DIR)."""
    with _disk_errors():
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe.{os.getpid()}.part"
        probe.write_bytes(b"")
        probe.unlink()


@contextmanager
def _disk_errors() -> Iterator[None]:
    """The disk's refusals as the store's: no space is StoreFull, the rest StoreUnavailable."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise StoreFull from None
        raise StoreUnavailable(f"the dataset directory cannot be written ({exc.strerror or exc})") from None


def _discard(path: Path) -> None:
    """Cleanup that must not hide the error being handled (a read-only disk refuses it too)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
