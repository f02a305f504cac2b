"""The fields every event family shares: the common header, and what an error says."""

from __future__ import annotations

import time
from typing import Any

from .events import Failed


def common_fields(kind: str, request_id: str) -> dict:
    return {"type": kind, "request_id": request_id, "timestamp": round(time.time(), 3)}


def error_fields(failed: Failed) -> dict[str, Any]:
    """An error event's fields; a recoverable one says when and from where to resume."""
    fields: dict[str, Any] = {
        "error": failed.message,
        "recoverable": failed.recoverable,
        "chunk_index": failed.index,
        "progress": failed.progress.fraction,
    }
    if failed.recoverable:
        fields.update(retry_after_ms=failed.retry_after_ms, resume_from=failed.resume_from)
    return fields


def error_framing(failed: Failed) -> dict[str, Any]:
    """A recoverable error carries the resume point as its id and the wait as `retry:`, so a
    browser EventSource resumes at the right place after the right delay on its own."""
    if not failed.recoverable:
        return {}
    return {"id": failed.resume_from, "retry_ms": failed.retry_after_ms}
