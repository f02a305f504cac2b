"""Uploaded inputs on disk, so that every stream works with a plain GET (browser EventSource).

A dataset is two files in one directory: `<id>` (the bytes) and `<id>.json` (size, sha256,
expiry), both written under temporary names and renamed into place, so that every worker of
an instance (they share the directory) sees a dataset whole or not at all. Ids are 32
URL-safe characters from `secrets`: a dataset id is its own access token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from .source import InputTooLarge

_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_PIECE = 1 << 20
#: Expired datasets are looked for at most this often (each look lists the directory).
PURGE_EVERY_S = 60.0


class DatasetNotFound(KeyError):
    pass


class StoreFull(Exception):
    """The directory holds its byte limit already."""


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


class DatasetStore:
    def __init__(self, directory: Path, max_bytes: int, max_total_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._purged_at = float("-inf")
        directory.mkdir(parents=True, exist_ok=True)

    def create(self, stream: BinaryIO, size: int | None) -> Dataset:
        """Copy a body to disk, hashing it on the way; never holds more than a piece in memory.

        Raises InputTooLarge past `max_bytes`, StoreFull when the directory is at its limit.
        """
        self.purge()
        if self.total_bytes() + (size or 0) > self.max_total_bytes:
            raise StoreFull
        dataset_id = secrets.token_urlsafe(24)
        partial = self.directory / f".{dataset_id}.part"
        digest, written = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                while piece := stream.read(_PIECE if size is None else min(_PIECE, size - written)):
                    written += len(piece)
                    if written > self.max_bytes:
                        raise InputTooLarge(self.max_bytes)
                    digest.update(piece)
                    out.write(piece)
            now = self._clock()
            dataset = Dataset(dataset_id, written, digest.hexdigest(), now, now + self.ttl_s)
            partial.rename(self.directory / dataset_id)
            _write_atomically(self.directory / f"{dataset_id}.json", json.dumps(asdict(dataset)))
        finally:
            partial.unlink(missing_ok=True)
        return dataset

    def get(self, dataset_id: str) -> Dataset:
        if not _ID.fullmatch(dataset_id):
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
        return sum(p.stat().st_size for p in self.directory.iterdir() if _ID.fullmatch(p.name))

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


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
