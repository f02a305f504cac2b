"""The request model every endpoint shares: where fields and input come from, and their checks.

Input arrives as a JSON body (`input_data`), as a raw body (application/octet-stream or
text/plain, fields in the query string, read incrementally), as query parameters on GET, or
as `dataset_id`, a dataset uploaded earlier (which lets a browser's EventSource use a GET).
Everything is validated before any work starts, and every refusal names its field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Request

from ..engine import RANGES, ReservoirParams
from ..storage.datasets import DatasetNotFound, DatasetStore
from ..storage.source import BytesSource, InputSource, InputTooLarge, StreamSource, read_all
from .body import CheckedBody
from .errors import APIError

RAW_TYPES = ("application/octet-stream", "text/plain")
JSON_TYPE = "application/json"
#: Fields the original guide documented that change nothing here; accepted and ignored.
IGNORED_FIELDS = frozenset({"include_intermediate", "output_format",
                            "access_token"})  # the API key, checked before (web/access.py)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
#: What Field._coerce returns for a value it cannot convert.
_WRONG = object()
# ASCII digits only: int() and float() also take "٢٥٦" and "2_56" (both would be 256).
_NUMBER = {int: re.compile(r"[+-]?[0-9]+"), float: re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")}


@dataclass(frozen=True)
class Field:
    name: str
    kind: type
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None:
            fmt = (lambda v: str(int(v))) if self.kind is int else (lambda v: f"{v:g}")
            return f"{self.kind.__name__} in {fmt(self.low)}..{fmt(self.high)}"
        return self.kind.__name__

    def convert(self, value: Any, from_text: bool) -> Any:
        converted = self._coerce(value, from_text)
        if converted is _WRONG or (self.choices and converted not in self.choices) or (
                self.low is not None and not self.low <= converted <= self.high):
            raise self._wrong(value if converted is _WRONG else converted)
        return converted

    def _wrong(self, value: Any) -> APIError:
        """Built only for a refusal: the message holds the value's repr, as long as the value
        (up to a whole JSON body's input_data)."""
        return APIError(400, f"{self.name} must be {self.describe()}, got {value!r}", self.name)

    def _coerce(self, value: Any, from_text: bool) -> Any:
        """The value as `kind`, or _WRONG."""
        if from_text:
            text = str(value).strip()
            if self.kind is bool:
                lowered = text.lower()
                return lowered in _TRUE if lowered in _TRUE | _FALSE else _WRONG
            if self.kind in _NUMBER and not _NUMBER[self.kind].fullmatch(text):
                return _WRONG
            try:
                return self.kind(text)
            except ValueError:
                return _WRONG
        if self.kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return value if type(value) is self.kind else _WRONG


def engine_field(name: str) -> Field:
    limits = RANGES[name]
    default = ReservoirParams.__dataclass_fields__[name].default
    return Field(name, int if limits.integer else float, default, limits.low, limits.high)


ENGINE_FIELDS = tuple(engine_field(name) for name in ("membrane_depth", "esn_size", "frame_size", "seed"))
COMMON_FIELDS = (
    Field("input_data", str),
    Field("dataset_id", str),
    *ENGINE_FIELDS,
    Field("processing_mode", str, "streaming", choices=("server_side", "streaming", "batch")),
)


@dataclass
class ProcessingRequest:
    params: ReservoirParams
    processing_mode: str
    source: InputSource
    options: dict[str, Any] = field(default_factory=dict)
    raw_body: bool = False  # the input is the request's own body, read from the socket


def parse_request(request: Request, extra: Sequence[Field] = (), *, max_body_bytes: int, json_max_bytes: int,
                  body_timeout: float, datasets: DatasetStore | None = None) -> ProcessingRequest:
    """Validate a request completely, before any work, into parameters and an input source."""
    declared = {f.name: f for f in (*COMMON_FIELDS, *extra)}
    raw_body: InputSource | None = None
    # Each request attribute is parsed from the environ when asked (a query string into a
    # MultiDict even when empty): asked once each, no longer about 30% of this function
    # (line_profiler, in process).
    query = _single_values(request.args) if request.environ.get("QUERY_STRING") else {}
    body_values: dict[str, Any] = {}
    length = request.content_length

    if request.method == "POST" and _has_body(request, length):
        if length is not None and length > max_body_bytes:
            raise APIError(413, f"request body exceeds the limit of {max_body_bytes} bytes", None)
        refuse_encoded_body(request)
        mimetype = request.mimetype
        body = CheckedBody(request.environ, body_timeout)
        if mimetype == JSON_TYPE:
            body_values = _json_object(body, length, json_max_bytes)
        elif mimetype in RAW_TYPES:
            # The server's own input stream: StreamSource enforces the limit as it reads (werkzeug's
            # wrapper would raise its HTTP 413 in the middle of a stream instead).
            raw_body = StreamSource(body, length, max_body_bytes)
        else:
            raise APIError(
                415,
                f"unsupported Content-Type {mimetype or '(none)'!r}: use {JSON_TYPE} with input_data, "
                f"or a raw body as {' or '.join(RAW_TYPES)}",
                None,
            )

    twice = sorted(set(query) & set(body_values))
    if twice:
        raise APIError(400, f"{twice[0]} is given both in the query string and in the body", twice[0])
    values = {}
    for name, value in [*((k, (v, True)) for k, v in query.items()), *((k, (v, False)) for k, v in body_values.items())]:
        if name in IGNORED_FIELDS:
            continue
        spec = declared.get(name)
        if spec is None:
            raise APIError(400, f"unknown field {name!r}; accepted: {', '.join(sorted(declared))}", name)
        values[name] = spec.convert(*value)

    text = values.pop("input_data", None)
    dataset_id = values.pop("dataset_id", None)
    given = [name for name, v in (("a raw body", raw_body), ("input_data", text), ("dataset_id", dataset_id)) if v is not None]
    if len(given) > 1:
        raise APIError(400, f"give the input one way only, not {' and '.join(given)}", "dataset_id" if dataset_id else "input_data")
    if not given:
        raise APIError(400, "input is required: input_data, a raw request body, or dataset_id", "input_data")
    if text is not None and len(text.encode("utf-8")) > max_body_bytes:
        raise APIError(413, f"input exceeds the limit of {max_body_bytes} bytes", "input_data")

    engine_values = {f.name: values.pop(f.name, f.default) for f in ENGINE_FIELDS}
    params = ReservoirParams(**engine_values)  # ParameterError: a 400 naming the field (errors.py)
    mode = values.pop("processing_mode", "streaming")
    options = {f.name: values.get(f.name, f.default) for f in extra}
    source = raw_body or (BytesSource(text.encode("utf-8")) if text is not None else _open_dataset(datasets, dataset_id))
    return ProcessingRequest(params=params, processing_mode=mode, source=source, options=options,
                             raw_body=raw_body is not None)


def _open_dataset(datasets: DatasetStore | None, dataset_id: str) -> InputSource:
    """Opened last, once everything else is valid (DatasetNotFound: a 404, errors.py)."""
    if datasets is None:
        raise DatasetNotFound(dataset_id)
    return datasets.open(dataset_id)


def parse_fields(args: Mapping[str, str], fields: Sequence[Field]) -> dict[str, Any]:
    """Query-only endpoints (e.g. membrane_info): the same checks, no input."""
    declared = {f.name: f for f in fields}
    values = {f.name: f.default for f in fields}
    for name, value in _single_values(args).items():
        spec = declared.get(name)
        if spec is None:
            raise APIError(400, f"unknown field {name!r}; accepted: {', '.join(sorted(declared))}", name)
        values[name] = spec.convert(value, True)
    return values


def _single_values(args) -> dict[str, str]:
    values = {}
    for name in args:
        given = args.getlist(name)
        if len(given) > 1:
            raise APIError(400, f"{name} is given more than once", name)
        values[name] = given[0]
    return values


def _has_body(request: Request, length: int | None) -> bool:
    if length is not None:
        return length > 0
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def refuse_encoded_body(request: Request) -> None:
    """A compressed body (Content-Encoding) is refused, not computed on as if it were raw."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise APIError(415, f"Content-Encoding {encoding!r} request bodies are not accepted: send the body "
                            "uncompressed (compression is offered for responses, with Accept-Encoding)", None)


def _json_object(body: CheckedBody, size: int | None, limit: int) -> dict[str, Any]:
    """The JSON body as an object, read up to `limit` bytes (refused by Content-Length before
    reading): a raw body or a dataset is the way for large inputs, read incrementally.

    Duplicate keys, nesting the object model cannot use, and strings that are not valid
    Unicode (lone surrogates) are refused by name instead of silently taking the last value
    or failing later.
    """
    too_large = APIError(413, f"a JSON body is at most {limit} bytes: send large inputs as a raw body "
                              f"({' or '.join(RAW_TYPES)}, fields in the query string) or upload a dataset", None)
    if size is not None and size > limit:
        raise too_large
    try:
        text = read_all(StreamSource(body, size, limit), limit)
    except InputTooLarge:
        raise too_large from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise APIError(400, "the JSON body is nested too deeply: it must be one object of fields", None) from None
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, _DuplicateKey):
            raise APIError(400, f"{exc.key} is given more than once in the JSON body", exc.key) from None
        raise APIError(400, "the body must be a JSON object (it is not valid JSON)", None) from None
    if not isinstance(data, dict):
        raise APIError(400, "the body must be a JSON object", None)
    for key, value in data.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise APIError(400, f"{key} is not valid Unicode text (it holds a lone surrogate escape)", key) from None
    return data


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen
