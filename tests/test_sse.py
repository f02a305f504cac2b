import pytest

from dtesn.streaming import sse
from tests.support.sse import parse


def test_event_fields_and_multiline_data():
    raw = sse.event("line one\nline two\r\nthree", name="chunk", id="abc:1", retry_ms=1500)
    assert raw == b"retry: 1500\nid: abc:1\nevent: chunk\ndata: line one\ndata: line two\ndata: three\n\n"
    (ev,) = parse([raw])
    assert ev.data == "line one\nline two\nthree" and ev.id == "abc:1" and ev.event == "chunk" and ev.retry == 1500


def test_json_is_one_compact_line():
    assert sse.event({"a": [1, 2], "b": "é"}) == 'data: {"a":[1,2],"b":"é"}\n\n'.encode()


@pytest.mark.parametrize("bad", ["has space", "new\nline", "x" * 129, "semi;colon", ""])
def test_ids_are_cors_safe_and_short(bad):
    with pytest.raises(ValueError):
        sse.event("x", id=bad)


def test_event_names_cannot_break_lines():
    with pytest.raises(ValueError):
        sse.event("x", name="a\nb")


def test_comment_and_retry():
    assert sse.comment("keep\nalive") == b": keep\n: alive\n\n"
    assert sse.retry(3000) == b"retry: 3000\n\n"
