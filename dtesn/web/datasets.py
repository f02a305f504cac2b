"""Datasets: upload an input once, then stream it with a plain GET (`?dataset_id=`)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from ..streaming.datasets import DatasetNotFound, DatasetStore, StoreFull, StoreUnavailable
from ..streaming.source import InputTooLarge
from .body import CheckedBody
from .errors import APIError
from .request_model import RAW_TYPES, refuse_encoded_body

bp = Blueprint("datasets", __name__, url_prefix="/deep_tree_echo/datasets")


def _store() -> DatasetStore:
    return current_app.extensions["dtesn.datasets"]


@bp.post("")
def upload():
    """Upload an input once (streamed to disk, hashed), then stream it by GET with dataset_id."""
    store = _store()
    if request.mimetype not in RAW_TYPES:
        raise APIError(415, f"upload the dataset as a raw body: Content-Type {' or '.join(RAW_TYPES)}", None)
    size = request.content_length
    if size is not None and size > store.max_bytes:
        raise APIError(413, f"a dataset is at most {store.max_bytes} bytes", None)
    if size == 0 or (size is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower()):
        raise APIError(400, "the dataset is empty: send its bytes as the request body", None)
    refuse_encoded_body(request)
    body = CheckedBody(request.environ, current_app.config["DTESN_SETTINGS"].body_timeout)
    try:
        dataset = store.create(body, size)
    except InputTooLarge:
        raise APIError(413, f"a dataset is at most {store.max_bytes} bytes", None) from None
    except StoreFull:
        raise APIError(507, "the dataset store is full: delete datasets or try later", None,
                       {"Retry-After": "60"}) from None
    except StoreUnavailable as exc:
        raise APIError(503, f"datasets cannot be stored right now: {exc}", None, {"Retry-After": "60"}) from None
    if dataset.bytes == 0:
        store.delete(dataset.dataset_id)
        raise APIError(400, "the dataset is empty: send its bytes as the request body", None)
    response = jsonify(dataset.to_json())
    response.status_code = 201
    response.headers["Location"] = url_for("datasets.describe", dataset_id=dataset.dataset_id)
    return response


@bp.get("/<dataset_id>")
def describe(dataset_id: str):
    """A dataset's size, sha256 and expiry."""
    return jsonify(_found(lambda: _store().get(dataset_id)).to_json())


@bp.delete("/<dataset_id>")
def delete(dataset_id: str):
    """Remove a dataset now (a stream already reading it finishes)."""
    _found(lambda: _store().delete(dataset_id))
    return Response(status=204)


def _found(action):
    try:
        return action()
    except DatasetNotFound:
        raise APIError(404, "no such dataset (unknown, deleted or expired)", "dataset_id") from None
