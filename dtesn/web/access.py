"""Optional API keys: with DTESN_API_KEYS set, every request under the kit's prefix presents one.

`Authorization: Bearer <key>`, or `access_token=<key>` in the query string for clients that
cannot set headers (a browser's EventSource). Keys are compared in constant time and never
logged (the request log records the path without its query string). /health stays open.
"""

from __future__ import annotations

import hmac

from flask import request

from .errors import APIError

QUERY_FIELD = "access_token"


def check_key(keys: tuple[bytes, ...]) -> None:
    """Refuse a request under the kit's prefix without one of `keys` (none: keys are off)."""
    if not keys or request.method == "OPTIONS":
        return None
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get(QUERY_FIELD, "")
    if not any(hmac.compare_digest(given.encode(), key) for key in keys):
        raise APIError(401, "an API key is required: Authorization: Bearer <key>, or access_token=<key> "
                            "in the query string", None, {"WWW-Authenticate": 'Bearer realm="dtesn"'})
    return None
