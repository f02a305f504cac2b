"""Datasets: upload an input once, then stream it with a plain GET (`?dataset_id=`)."""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for

from ..storage.datasets import DatasetNotFound, DatasetStore
from ..storage.source import InputTooLarge
from .body import CheckedBody
from .errors import APIError, json_response
from .request_model import RAW_TYPES, refuse_encoded_body
from .state import kit

bp = Blueprint("datasets", __name__)


def _store() -> DatasetStore:
    store = kit().runtime.datasets
    if store is None:  # a runtime built without one (Runtime.create(datasets=False))
        raise DatasetNotFound("datasets are off")
    return store


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
    body = CheckedBody(request.environ, kit().settings.body_timeout)
    try:
        dataset = store.create(body, size)
    except InputTooLarge:
        raise APIError(413, f"a dataset is at most {store.max_bytes} bytes", None) from None
    if dataset.bytes == 0:
        store.delete(dataset.dataset_id)
        raise APIError(400, "the dataset is empty: send its bytes as the request body", None)
    return json_response(dataset.to_json(), 201, {"Location": url_for(".describe", dataset_id=dataset.dataset_id)})


@bp.get("/<dataset_id>")
def describe(dataset_id: str):
    """A dataset's size, sha256 and expiry."""
    return json_response(_store().get(dataset_id).to_json())


@bp.delete("/<dataset_id>")
def delete(dataset_id: str):
    """Remove a dataset now (a stream already reading it finishes)."""
    _store().delete(dataset_id)
    return Response(status=204)
