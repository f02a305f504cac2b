"""The refusals every store shares, whatever holds it (this disk, or Redis)."""

from __future__ import annotations


class StoreFull(Exception):
    """The store's byte cap, or the disk, has no room for this upload (HTTP 507)."""


class StoreUnavailable(Exception):
    """The store cannot be used now (a read-only directory, Redis unreachable): HTTP 503."""
