"""A host Flask app that embeds the kit: its own routes, error pages and JSON settings stay
its own, and the kit serves its streams under /dtesn.

    gunicorn -k gevent -b 127.0.0.1:8000 examples.host_app:app
    curl -N -X POST 127.0.0.1:8000/dtesn/stream_chunks --data-binary @big.bin \
         -H 'Content-Type: application/octet-stream'
"""

from __future__ import annotations

from flask import Flask, jsonify

from dtesn import DTESN

app = Flask(__name__)
app.json.sort_keys = True  # the host's JSON settings: the kit's answers do not depend on them


@app.get("/")
def home():
    return jsonify({"app": "host", "streams_at": "/dtesn"})


@app.errorhandler(404)
def not_found(_exc):
    return "<h1>host page not found</h1>", 404


# Settings in code, over config/dtesn.toml and the DTESN_* environment.
dtesn = DTESN(app, url_prefix="/dtesn", heartbeat_interval=5.0, max_streams=50)
