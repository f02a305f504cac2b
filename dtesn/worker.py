"""gunicorn's gevent worker, answering the requests it cannot parse in JSON like the kit.

gunicorn refuses an over-long request line (414), too many or too large headers (431) and
other malformed requests (400) before the app sees them, with an HTML page. This worker
answers the same statuses with the kit's `{"error": ..., "field": null}` body; everything
else is gunicorn's. The limits themselves are gunicorn's settings: `limit_request_line`
(4094 bytes), `limit_request_fields` (100) and `limit_request_field_size` (8190 bytes).
It lives outside `dtesn.web` on purpose: gunicorn's master imports it, and the app must be
imported only after gevent has patched the worker.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.ggevent import GeventWorker

STATUS = {  # gunicorn's own choice of status for each, as in gunicorn.workers.base.handle_error
    errors.LimitRequestLine: (414, "URI Too Long"),
    errors.LimitRequestHeaders: (431, "Request Header Fields Too Large"),
    errors.UnsupportedTransferCoding: (501, "Not Implemented"),
    errors.ExpectationFailed: (417, "Expectation Failed"),
}
CLIENT_ERRORS = (errors.ParseException,)


class JSONErrorsWorker(GeventWorker):
    def handle_error(self, req, client, addr, exc) -> None:
        if not isinstance(exc, CLIENT_ERRORS) or isinstance(exc, (errors.ConfigurationProblem,
                                                                  errors.InvalidResponseHeader,
                                                                  errors.InvalidResponseHeaderName)):
            super().handle_error(req, client, addr, exc)
            return
        status, reason = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), (400, "Bad Request"))
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        body = json.dumps({"error": f"{reason.lower()}: {exc}", "field": None}, separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except Exception:  # noqa: BLE001 - the client may be gone; gunicorn does the same
            self.log.debug("Failed to send error message.")
