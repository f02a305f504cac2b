"""DTESN_CORS_ORIGINS: preflights answered before API keys, allowed origins marked, others refused."""

from __future__ import annotations

import pytest

from dtesn.settings import Settings, SettingsError
from dtesn.web import create_app

PAGE = "http://page.example:8080"
PREFLIGHT = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, last-event-id"}


def client(**settings):
    return create_app(Settings.load(**settings)).test_client()


def test_an_allowed_origin_gets_its_preflight_and_marked_answers_even_with_api_keys():
    c = client(cors_origins=f"http://other.example, {PAGE}", api_keys="k1")
    pre = c.options("/deep_tree_echo/datasets", headers=PREFLIGHT)
    assert pre.status_code == 204
    assert "Last-Event-ID" in pre.headers["Access-Control-Allow-Headers"]
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    got = c.get("/deep_tree_echo/stream_chunks?input_data=hi&access_token=k1", headers={"Origin": PAGE})
    assert got.status_code == 200
    assert got.headers["Access-Control-Allow-Origin"] == PAGE and "Origin" in got.headers["Vary"]
    assert "X-Request-ID" in got.headers["Access-Control-Expose-Headers"]
    error = c.get("/deep_tree_echo/datasets/nope", headers={"Origin": PAGE, "Authorization": "Bearer k1"})
    assert error.status_code == 404 and error.headers["Access-Control-Allow-Origin"] == PAGE  # errors readable too


def test_other_origins_are_refused_and_unset_means_same_origin_only():
    for c in (client(cors_origins="http://other.example"), client()):
        pre = c.options("/deep_tree_echo/datasets", headers=PREFLIGHT)
        assert pre.status_code == 403 and "DTESN_CORS_ORIGINS" in pre.json["error"]
        got = c.get("/deep_tree_echo/", headers={"Origin": PAGE})
        assert got.status_code == 200 and "Access-Control-Allow-Origin" not in got.headers


def test_any_origin():
    got = client(cors_origins="*").get("/deep_tree_echo/", headers={"Origin": "https://anywhere.example"})
    assert got.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("bad", ["page.example", "http://page.example/path", "ftp://x"])
def test_a_bad_origin_stops_start_up_with_one_line(bad):
    with pytest.raises(SettingsError, match="DTESN_CORS_ORIGINS"):
        Settings.load(cors_origins=bad)
