"""The browser console at `/`: one static page (no CDN, no build step) that lists the
endpoints from the index, uploads a pasted text or a file as a dataset, streams it with
EventSource and decodes the payloads with DecompressionStream. Its URL drives it
(`/?endpoint=...&dataset_id=...&autostart=1`, any request field as a parameter), and so does
`?api=<origin>`: the same page, served from elsewhere, uses another origin's API (which must
allow it: DTESN_CORS_ORIGINS)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_file

PAGE = Path(__file__).resolve().parent / "static" / "console.html"

bp = Blueprint("console", __name__)


@bp.get("/")
def console():
    """The browser console: pick an endpoint, paste text or choose a file, watch it stream."""
    return send_file(PAGE, mimetype="text/html", max_age=0)
