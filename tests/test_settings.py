import pytest

from dtesn.settings import Settings, SettingsError


def test_defaults_load_from_config():
    s = Settings.load({})
    assert s.worker_connections > 0 and s.graceful_timeout < 30
    assert s.heartbeat_for(25.0) == 25.0


def test_environment_overrides_every_setting():
    s = Settings.load({"DTESN_MAX_BODY_BYTES": "5000", "DTESN_PROCESS_MAX_BYTES": "100", "DTESN_HEARTBEAT_INTERVAL": "0.3"})
    assert (s.max_body_bytes, s.process_max_bytes) == (5000, 100)
    assert s.heartbeat_for(25.0) == 0.3


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DTESN_TIMEOUT": "soon"}, "DTESN_TIMEOUT"),
        ({"DTESN_CACHE_SIZE": "0"}, "cache_size"),
        ({"DTESN_HEARTBEAT_INTERVAL": "nan"}, "heartbeat_interval"),
        ({"DTESN_HEARTBEAT_INTERVAL": "-1"}, "heartbeat_interval"),
        ({"DTESN_PROCESS_MAX_BYTES": "10", "DTESN_MAX_BODY_BYTES": "5"}, "process_max_bytes"),
        ({"DTESN_MALLOC_THRESHOLD_BYTES": str(64 << 20)}, "malloc_threshold_bytes.*glibc's limit"),
        ({"DTESN_MALLOC_THRESHOLD_BYTES": "-1"}, "malloc_threshold_bytes"),
    ],
)
def test_invalid_values_are_refused_with_the_key(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.load(env)


def test_unknown_key_in_the_file_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\nmax_body_byte = 3\n")
    with pytest.raises(SettingsError):
        Settings.load({}, path)
