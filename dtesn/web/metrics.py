"""GET /metrics: the runtime's Prometheus metrics, every gunicorn worker's added up.

The standalone app serves it at /metrics (beside /health, outside the API prefix and its
keys: a scraper needs neither); a host app registers `bp` where it wants it.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .state import kit

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics (text format): streams, resumes, bytes, steps, latencies."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:  # under gunicorn: what every worker wrote there (config/gunicorn.conf.py)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, directory)
    else:
        registry = kit().runtime.metrics.registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
