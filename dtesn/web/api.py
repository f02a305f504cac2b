"""The non-streaming API: index, one-shot processing, live status, the membrane tree."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, request

from .. import __version__
from ..engine import ReservoirParams, membrane_tree
from ..storage.source import InputTooLarge, read_all
from .errors import APIError, json_response
from .request_model import COMMON_FIELDS, ENGINE_FIELDS, parse_fields, parse_request
from .state import BLUEPRINT, kit

bp = Blueprint("api", __name__)
health_bp = Blueprint("health", __name__)

STREAMING_ENDPOINTS = ("stream_process", "stream_chunks", "stream_large_dataset", "stream_optimized")


@health_bp.get("/health")
def health():
    """Liveness for load balancers and the test fixture: answers without touching the engine."""
    return json_response({"status": "ok", "version": __version__})


@bp.get("/")
def index():
    """What this service offers: endpoints, accepted fields and limits, version."""
    state = kit()
    settings = state.settings
    endpoints = []
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith((BLUEPRINT + ".", health_bp.name + ".")):  # not the host's own
            continue
        view = current_app.view_functions[rule.endpoint]
        endpoints.append({
            "path": rule.rule,
            "methods": sorted(rule.methods - {"HEAD", "OPTIONS"}),
            "description": (view.__doc__ or "").strip().split("\n")[0],
        })
    return json_response({
        "service": "dtesn-stream",
        "version": __version__,
        "endpoints": sorted(endpoints, key=lambda e: e["path"]),
        "fields": {f.name: {"type": f.describe(), "default": f.default} for f in COMMON_FIELDS},
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "process_max_bytes": settings.process_max_bytes,
            "max_streams": settings.max_streams,
            "dataset_max_bytes": settings.dataset_max_bytes,
        },
    })


@bp.post("/process")
def process():
    """Process a whole (small) input and answer with every feature as one JSON document."""
    started = time.perf_counter()
    state = kit()
    settings = state.settings
    parsed = parse_request(request, max_body_bytes=settings.max_body_bytes, json_max_bytes=settings.json_max_bytes,
                           body_timeout=settings.body_timeout, datasets=state.runtime.datasets)
    cap = settings.process_max_bytes
    too_large = APIError(
        413,
        f"/process computes at most {cap} bytes in one response; stream larger inputs with "
        + ", ".join(f"{state.url_prefix}/{name}" for name in STREAMING_ENDPOINTS),
        "input_data",
    )
    if parsed.source.size is not None and parsed.source.size > cap:
        parsed.source.close()
        raise too_large
    try:
        data = read_all(parsed.source, cap)
    except InputTooLarge:
        raise too_large from None
    finally:
        parsed.source.close()

    params = parsed.params
    compute_started = time.perf_counter()
    runtime = state.runtime
    result = runtime.pool.run(lambda: runtime.session(params).feed(data, final=True))
    compute_s = time.perf_counter() - compute_started
    runtime.metrics.processed(len(data), result.steps)
    return json_response({
        "request_id": request.environ.get("dtesn.request_id"),
        "metadata": {
            "input_bytes": len(data),
            "steps": result.steps,
            "membrane_depth": params.membrane_depth,
            "esn_size": params.esn_size,
            "neurons": params.neurons,
            "membranes": params.membranes,
            "neurons_per_membrane": params.neurons_per_membrane,
            "frame_size": params.frame_size,
            "seed": params.seed,
            "processing_mode": parsed.processing_mode,
        },
        "features": result.features.tolist(),
        "energy": result.energy,
        "digest": result.digest,
        "timings": {
            "compute_ms": round(compute_s * 1000, 3),
            "total_ms": round((time.perf_counter() - started) * 1000, 3),
            "steps_per_sec": round(result.steps / compute_s) if compute_s > 0 else None,
        },
    })


@bp.get("/status")
def status():
    """Live counters of the worker that answers: streams, requests, bytes, engine cache."""
    return json_response(kit().runtime.status())


MEMBRANE_FIELDS = (ENGINE_FIELDS[0], ENGINE_FIELDS[1])


@bp.get("/membrane_info")
def membrane_info():
    """The membrane tree for membrane_depth (and neurons per membrane for esn_size)."""
    values = parse_fields(request.args, MEMBRANE_FIELDS)
    params = ReservoirParams(membrane_depth=values["membrane_depth"], esn_size=values["esn_size"])
    tree = membrane_tree(params.membrane_depth)
    return json_response({**tree.describe(params.neurons_per_membrane), "esn_size": params.esn_size, "neurons": params.neurons})
