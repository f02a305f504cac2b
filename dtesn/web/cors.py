"""Cross-origin access (DTESN_CORS_ORIGINS): which other sites' pages may use the API.

Unset, the API is same-origin only, as a browser enforces by default. Set to comma-separated
origins (`https://app.example.com,http://localhost:3000`) or `*`, the kit answers preflights
(OPTIONS with Access-Control-Request-Method) itself, before API keys are checked (a browser
sends no credentials with a preflight), and marks its answers to an allowed origin. The
request headers a page may send include Last-Event-ID (an EventSource's reconnect) and
Authorization; X-Request-ID is readable by the page. A preflight from another origin gets a
403 JSON error that names the setting, so the refusal is visible in the network panel and not
only as the browser's generic CORS failure.
"""

from __future__ import annotations

from flask import Response, request

from .errors import json_response

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Content-Type, Last-Event-ID, Authorization, X-Request-ID, Accept"
EXPOSE_HEADERS = "X-Request-ID, X-Chunk-Size, X-Bandwidth-Hint"
MAX_AGE_S = 600


class CORS:
    def __init__(self, setting: str) -> None:
        """`setting` as Settings checked it: origins or *, comma-separated."""
        names = [name.strip() for name in setting.split(",") if name.strip()]
        self.any = "*" in names
        self.origins = frozenset(name.rstrip("/") for name in names if name != "*")

    @property
    def enabled(self) -> bool:
        return self.any or bool(self.origins)

    def allows(self, origin: str) -> bool:
        return self.any or origin in self.origins

    def preflight(self) -> Response | None:
        """The answer to a preflight under the prefix (None: not a preflight)."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin", "")
        if not self.allows(origin):
            return json_response({"error": f"origin {origin or '(none)'} may not use this API: add it to "
                                           "DTESN_CORS_ORIGINS", "field": None}, 403)
        response = Response(status=204)
        response.headers.update({
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
        })
        return response

    def mark(self, response: Response) -> None:
        """An allowed origin's answer says so (streams too: headers go out before the body)."""
        origin = request.headers.get("Origin")
        if origin is None or not self.enabled:
            return
        response.vary.add("Origin")
        if self.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = "*" if self.any else origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
