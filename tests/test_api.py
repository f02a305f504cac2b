"""The request model and the non-streaming endpoints, through Flask's test client."""

import dataclasses

import pytest

from dtesn.engine import ReservoirParams, session
from dtesn.settings import Settings
from dtesn.web import create_app

PROCESS = "/deep_tree_echo/process"


def assert_json_error(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "field"} and body["error"]
    assert body["field"] == field
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers["X-Request-ID"]
    return body


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"


def test_index_lists_endpoints_fields_and_limits(client):
    body = client.get("/deep_tree_echo/").get_json()
    paths = {e["path"] for e in body["endpoints"]}
    assert {"/health", "/deep_tree_echo/process", "/deep_tree_echo/status", "/deep_tree_echo/membrane_info"} <= paths
    assert body["fields"]["esn_size"] == {"type": "int in 32..4096", "default": 512}
    assert body["limits"]["process_max_bytes"] == Settings.load().process_max_bytes


def test_process_returns_the_engines_features(client):
    text = "The quick brown fox jumps over the lazy dog. " * 20
    r = client.post(PROCESS, json={"input_data": text, "membrane_depth": 3, "esn_size": 128, "seed": 9})
    assert r.status_code == 200
    body = r.get_json()
    expected = session(ReservoirParams(membrane_depth=3, esn_size=128, seed=9)).feed(text.encode(), final=True)
    assert body["digest"] == expected.digest
    assert body["features"] == expected.features.tolist()
    assert body["energy"] == expected.energy
    meta = body["metadata"]
    assert meta["input_bytes"] == len(text) and meta["steps"] == expected.steps == -(-len(text) // 64)
    assert meta["membranes"] == 4 and meta["neurons"] == 128
    assert body["timings"]["compute_ms"] > 0 and body["timings"]["steps_per_sec"] > 0


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain"])
def test_process_raw_body_with_fields_in_the_query(client, content_type):
    data = bytes(range(256)) * 3
    r = client.post(PROCESS + "?esn_size=64&membrane_depth=2", data=data, content_type=content_type)
    assert r.status_code == 200
    expected = session(ReservoirParams(membrane_depth=2, esn_size=64)).feed(data, final=True)
    assert r.get_json()["digest"] == expected.digest


def test_ignored_guide_fields_are_accepted(client):
    r = client.post(PROCESS, json={"input_data": "abc", "include_intermediate": True, "output_format": "json"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"input_data": "x", "esn_size": "512"}, "esn_size", "int in 32..4096"),
        ({"input_data": "x", "esn_size": 5000}, "esn_size", "32..4096"),
        ({"input_data": "x", "esn_size": 512.0}, "esn_size", "int"),
        ({"input_data": "x", "membrane_depth": True}, "membrane_depth", "int in 1..8"),
        ({"input_data": "x", "membrane_depth": 0}, "membrane_depth", "1..8"),
        ({"input_data": "x", "frame_size": 4097}, "frame_size", "1..4096"),
        ({"input_data": "x", "seed": -1}, "seed", "0..4294967295"),
        ({"input_data": "x", "processing_mode": "fast"}, "processing_mode", "server_side, streaming, batch"),
        ({"input_data": "x", "membrane_depth": 8, "esn_size": 512}, "esn_size", "smallest valid esn_size"),
        ({"input_data": "x", "colour": "red"}, "colour", "unknown field"),
        ({"input_data": 42}, "input_data", "str"),
        ({"input_data": None}, "input_data", "str"),
        ({}, "input_data", "input is required"),
    ],
)
def test_bad_fields_are_400_naming_the_field(client, payload, field, words):
    body = assert_json_error(client.post(PROCESS, json=payload), 400, field)
    assert words in body["error"]


def test_bad_query_values_are_400(client):
    r = client.post(PROCESS + "?esn_size=big", data=b"abc", content_type="application/octet-stream")
    assert assert_json_error(r, 400, "esn_size")["error"] == "esn_size must be int in 32..4096, got 'big'"
    r = client.post(PROCESS + "?esn_size=9999", data=b"abc", content_type="application/octet-stream")
    assert assert_json_error(r, 400, "esn_size")["error"].endswith("got 9999")  # the value as converted
    r = client.post("/deep_tree_echo/stream_chunks?timeout_prevention=maybe", data=b"abc", content_type="text/plain")
    assert "got 'maybe'" in assert_json_error(r, 400, "timeout_prevention")["error"]
    r = client.post(PROCESS + "?seed=1&seed=2", data=b"abc", content_type="application/octet-stream")
    assert_json_error(r, 400, "seed")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(client, body):
    assert_json_error(client.post(PROCESS, data=body, content_type="application/json"), 400)


def test_input_twice_is_400(client):
    r = client.post(PROCESS + "?input_data=a", data=b"abc", content_type="text/plain")
    assert_json_error(r, 400, "input_data")
    r = client.post(PROCESS + "?seed=1", json={"input_data": "a", "seed": 2})
    assert_json_error(r, 400, "seed")


def test_unsupported_content_type_is_415(client):
    r = client.post(PROCESS, data={"input_data": "abc"})
    assert "application/json" in assert_json_error(r, 415)["error"]


def test_process_cap_points_to_the_streams(client):
    cap = Settings.load().process_max_bytes
    r = client.post(PROCESS, data=b"x" * (cap + 1), content_type="application/octet-stream")
    assert "stream_large_dataset" in assert_json_error(r, 413, "input_data")["error"]
    r = client.post(PROCESS, json={"input_data": "x" * (cap + 1)})
    assert_json_error(r, 413, "input_data")


def test_body_over_the_global_limit_is_413():
    settings = dataclasses.replace(Settings.load(), max_body_bytes=1000, process_max_bytes=1000)
    client = create_app(settings).test_client()
    r = client.post(PROCESS, data=b"x" * 1001, content_type="application/octet-stream")
    assert_json_error(r, 413)


def test_unknown_route_and_method_are_json(client):
    assert_json_error(client.get("/nope"), 404)
    r = client.get(PROCESS)
    assert_json_error(r, 405)
    assert "POST" in r.headers["Allow"]


def test_unexpected_failure_is_a_json_500_with_request_id(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/boom")
    body = assert_json_error(r, 500)
    assert body["request_id"] == r.headers["X-Request-ID"]
    assert "secret" not in r.get_data(as_text=True)


def test_request_id_is_echoed_when_valid_and_replaced_when_not(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123_X"}).headers["X-Request-ID"] == "abc-123_X"
    replaced = client.get("/health", headers={"X-Request-ID": "bad id!" + "x" * 40}).headers["X-Request-ID"]
    assert replaced != "bad id" and 1 <= len(replaced) <= 32


def test_membrane_info_is_the_real_tree(client):
    body = client.get("/deep_tree_echo/membrane_info?membrane_depth=5&esn_size=1700").get_json()
    assert body["level_counts"] == [1, 1, 2, 4, 9]
    assert body["membranes"] == 17 and body["neurons_per_membrane"] == 100
    assert body["membrane_list"][4] == {"index": 4, "level": 4, "parent": 2, "tree": [1, 2, 3, 4]}
    assert_json_error(client.get("/deep_tree_echo/membrane_info?membrane_depth=9"), 400, "membrane_depth")
    assert_json_error(client.get("/deep_tree_echo/membrane_info?depth=3"), 400, "depth")
    r = client.get("/deep_tree_echo/membrane_info?membrane_depth=8&esn_size=64")
    assert "800" in assert_json_error(r, 400, "esn_size")["error"]


def test_status_counts_requests_and_processed_bytes(client):
    client.post(PROCESS, json={"input_data": "a" * 640})
    body = client.get("/deep_tree_echo/status").get_json()
    assert body["bytes_processed"] >= 640 and body["steps_processed"] >= 10
    assert body["active_streams"] == 0
    assert body["engine_cache"]["entries"] >= 1
