"""Optional API keys: with DTESN_API_KEYS set, every /deep_tree_echo request presents one.

`Authorization: Bearer <key>`, or `access_token=<key>` in the query string for clients that
cannot set headers (a browser's EventSource). Keys are compared in constant time and never
logged (the request log records the path without its query string). /health stays open.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from .errors import APIError

PREFIX = "/deep_tree_echo"
QUERY_FIELD = "access_token"


def parse_keys(text: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in text.split(",") if key.strip())


def require_keys(app: Flask, keys: tuple[str, ...]) -> None:
    if not keys:
        return
    encoded = [key.encode() for key in keys]

    @app.before_request
    def check_key():
        if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")) or request.method == "OPTIONS":
            return None
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get(QUERY_FIELD, "")
        if not any(hmac.compare_digest(given.encode(), key) for key in encoded):
            raise APIError(401, "an API key is required: Authorization: Bearer <key>, or access_token=<key> "
                                "in the query string", None, {"WWW-Authenticate": 'Bearer realm="dtesn"'})
        return None
