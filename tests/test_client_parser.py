"""The client's SSE parser against the WHATWG rules, byte by byte."""

from __future__ import annotations

import time

import pytest

from dtesn.client import EventParser, EventTooLarge, ServerEvent


def parse(*pieces: bytes, **kwargs) -> tuple[list[ServerEvent], EventParser]:
    parser = EventParser(**kwargs)
    out = []
    for piece in pieces:
        out += parser.feed(piece)
    return out, parser


def every_split(stream: bytes) -> list[list[ServerEvent]]:
    """The stream fed in two pieces at every possible split (and byte by byte)."""
    results = [parse(stream[:i], stream[i:])[0] for i in range(len(stream) + 1)]
    results.append(parse(*[stream[i : i + 1] for i in range(len(stream))])[0])
    return results


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending_split_anywhere(eol):
    stream = b"data: one" + eol + b"data: two" + eol + eol + b"event: x" + eol + b"data: 3" + eol + eol
    for got in every_split(stream):
        assert got == [ServerEvent("one\ntwo"), ServerEvent("3", "x")]


def test_a_crlf_split_across_reads_is_one_line_end_not_two():
    got, _ = parse(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert got == [ServerEvent("a\nb")]


def test_a_bom_opens_the_stream_once_and_only_at_the_start():
    assert parse(b"\xef\xbb", b"\xbfdata: x\n\n")[0] == [ServerEvent("x")]
    got, _ = parse(b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n")
    assert got == [ServerEvent("x")]  # a second BOM is part of a field name, which is ignored


def test_one_leading_space_is_dropped_not_more_and_no_colon_means_an_empty_value():
    got, _ = parse(b"data:  two spaces\ndata:none\ndata\n\n")
    assert got == [ServerEvent(" two spaces\nnone\n")]


def test_ids_carry_over_and_an_id_with_nul_is_ignored():
    got, parser = parse(b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in got] == ["1", "1", "1", ""]
    assert parser.last_event_id == ""


def test_retry_counts_only_when_all_ascii_digits():
    for value, expected in [(b"1500", 1500), (b"15a", None), (b" 15", 15), (b"", None), (b"-1", None), ("١٢".encode(), None)]:
        _, parser = parse(b"retry:" + value + b"\n")
        assert parser.retry_ms == expected, value


def test_events_without_data_comments_and_unknown_fields_dispatch_nothing():
    got, _ = parse(b": comment\n\nevent: e\n\nfoo: bar\n\nid: 5\n\n")
    assert got == []
    got, _ = parse(b"event: e\n\ndata: after\n\n")
    assert got == [ServerEvent("after")]  # the event type does not leak into the next event


def test_max_event_size_bounds_an_event_and_a_line():
    with pytest.raises(EventTooLarge):
        parse(b"data: " + b"x" * 2000 + b"\n", max_event_size=1000)
    with pytest.raises(EventTooLarge):
        parse(b"data: " + b"x" * 600 + b"\n", b"data: " + b"y" * 600 + b"\n", max_event_size=1000)
    with pytest.raises(EventTooLarge):
        parse(b"data: " + b"z" * 2000, max_event_size=1000)  # no line end yet: still bounded


def feed_in_pieces(size: int, piece: int = 4096) -> float:
    stream = b"data: " + b"v" * size + b"\n\n"
    parser, started = EventParser(), time.perf_counter()
    out = []
    for i in range(0, len(stream), piece):
        out += parser.feed(stream[i : i + piece])
    elapsed = time.perf_counter() - started
    assert len(out) == 1 and len(out[0].data) == size
    return elapsed


def test_a_16_mb_event_in_4_kb_reads_parses_in_linear_time():
    # 16x the size: linear is about 16x the time, a parser that rescans each read 256x. The
    # bound sits 4x from both (a 10 MB event against 30x failed once on a busy machine, 34x).
    small = min(feed_in_pieces(1 << 20) for _ in range(5))
    large = min(feed_in_pieces(16 << 20) for _ in range(3))
    assert large < 64 * small


def test_backoff_starts_at_the_servers_retry_and_doubles_with_jitter_above_it():
    from dtesn.client.client import Client, _Resumable

    client = Client("http://127.0.0.1:1", backoff_max=10)
    state = _Resumable(retry_ms=1000)
    delays = []
    for failures in range(1, 7):
        state.failures = failures
        delays.append(client._delay(None, state))
    assert delays[0] == 1.0
    for n, delay in enumerate(delays[1:], start=2):
        floor = min(10, 2 ** (n - 1))
        assert floor <= delay <= 1.5 * floor
    assert client._delay(250, _Resumable(failures=1)) == 0.25  # a recoverable error's own retry_after_ms
