"""Resume: a reconnect after any event continues exactly there, on every stream."""

from __future__ import annotations

import hashlib

import pytest
import requests

from dtesn.engine import ReservoirParams, session
from dtesn.storage.checkpoints import PER_STREAM, MemoryCheckpointStore
from dtesn.streaming.resume import Checkpoint, EventId, MalformedEventId
from tests.support.sse import events, read_until_chunk

# Slow enough per chunk that checkpoints (one per computed batch, ~50 ms of compute) fall between
# chunk events: frame 2 makes 512 steps of each 1024-byte chunk.
PARAMS = "esn_size=1024&membrane_depth=4&frame_size=2"
STREAMS = {
    "stream_process": "",
    "stream_chunks": "&chunk_size=1024",
    "stream_large_dataset": "&max_chunk_size=1024&compression_level=2",
    "stream_optimized": "&bandwidth_hint=low",
}
BODY = bytes(range(256)) * 320  # 80 KB: 20 to 80 chunks


def url(server, stream: str, extra: str = "") -> str:
    return f"{server.url}/deep_tree_echo/{stream}?{PARAMS}{STREAMS[stream]}{extra}"


def post(target: str, body: bytes = BODY, headers: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(target, data=body, stream=True, timeout=60,
                         headers={"Content-Type": "application/octet-stream", **(headers or {})}, **kwargs)


def chunks_of(evs) -> dict[int, str]:
    """Chunk digests by the index in the event id."""
    return {int(ev.id.rsplit(":", 1)[1]): ev.json["digest"] if "digest" in ev.json else ev.json["result"]["digest"]
            for ev in evs if ev.id and "chunk" in ev.json["type"]}


@pytest.fixture(scope="module")
def whole(server):
    """Every stream uninterrupted: chunk digests by index, and the final digest."""
    out = {}
    for stream in STREAMS:
        evs = list(events(post(url(server, stream))))
        out[stream] = (chunks_of(evs), evs[-1].json["final_digest"], len(chunks_of(evs)))
    return out


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("where", ["start", "early", "middle", "last"])
def test_a_dropped_post_stream_resumes_with_identical_results_and_no_repeats(server, whole, stream, where):
    digests, final, total = whole[stream]
    cut = {"start": -1, "early": 1, "middle": total // 2, "last": total - 1}[where]
    if cut < 0:
        first = post(url(server, stream))
        opening = next(events(first))
        first.close()
        before, last_id = [opening], opening.id
        assert last_id.endswith(":start")
    else:
        before = read_until_chunk(post(url(server, stream)), cut)
        last_id = before[-1].id
    after = list(events(post(url(server, stream), headers={"Last-Event-ID": last_id})))
    assert after[-1].json["final_digest"] == final
    assert all(ev.json["request_id"] == last_id.split(":")[0] for ev in after)
    assert not any("metadata" in ev.json["type"] for ev in after)
    resumed = chunks_of(after)
    assert sorted(resumed) == list(range(cut + 1, total))  # nothing sent twice, nothing missing
    assert {**chunks_of(before), **resumed} == digests


@pytest.mark.parametrize("stream", STREAMS)
def test_json_input_with_last_event_id_in_the_query_resumes_without_a_checkpoint(server, stream):
    """A request id the server never saw has no checkpoint: the stream recomputes silently."""
    body = {"input_data": "resume me " * 4000}
    reference = list(events(requests.post(url(server, stream), json=body, stream=True, timeout=60)))
    ref_chunks = chunks_of(reference)
    cut = len(ref_chunks) // 2
    after = list(events(requests.post(url(server, stream, f"&last_event_id=never{stream[7:11]}:{cut}"), json=body,
                                      stream=True, timeout=60)))
    assert sorted(chunks_of(after)) == list(range(cut + 1, len(ref_chunks)))
    assert all(chunks_of(after)[i] == ref_chunks[i] for i in chunks_of(after))
    assert after[-1].json["final_digest"] == reference[-1].json["final_digest"]
    assert after[-1].id == f"never{stream[7:11]}:done"


@pytest.mark.parametrize("stream", STREAMS)
def test_a_reconnect_after_completion_gets_204(server, stream):
    r = post(url(server, stream), headers={"Last-Event-ID": "abc123:done"})
    assert r.status_code == 204 and r.content == b""


@pytest.mark.parametrize("bad", ["nocolon", "abc:", "abc:-1", "abc:01", "a b:1", "x" * 33 + ":1", "abc:1:2", "abc:start!"])
def test_malformed_ids_are_a_400_before_the_stream(server, bad):
    for r in (post(url(server, "stream_chunks"), headers={"Last-Event-ID": bad}),
              requests.get(url(server, "stream_chunks", "&input_data=x"), params={"last_event_id": bad}, timeout=10)):
        assert r.status_code == 400, bad
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["field"] == "last_event_id"


def test_resuming_with_other_input_or_parameters_is_a_409(server):
    # Chunk 70 of 80: the first checkpoint is at the end of the first batch (~50 ms of compute),
    # which the compiled kernel makes about 30 chunks here on a quiet machine; a cut before it
    # would leave no checkpoint to resume from, and the resume would recompute everything.
    before = read_until_chunk(post(url(server, "stream_chunks")), 70)
    last_id = before[-1].id
    other_body = post(url(server, "stream_chunks"), body=BODY[::-1], headers={"Last-Event-ID": last_id})
    assert other_body.status_code == 409
    assert "input differs" in other_body.json()["error"]
    other_params = requests.post(url(server, "stream_chunks").replace("frame_size=2", "frame_size=4"), data=BODY,
                                 headers={"Content-Type": "application/octet-stream", "Last-Event-ID": last_id}, timeout=30)
    assert other_params.status_code == 409
    assert "other parameters" in other_params.json()["error"]
    same = list(events(post(url(server, "stream_chunks"), headers={"Last-Event-ID": last_id})))
    done = same[-1].json
    assert done["type"] == "completion" and done["bytes_processed"] == len(BODY)
    # Throughput is of what this connection computed: the input before the checkpoint was not.
    assert done["throughput_bytes_per_sec"] * done["duration_ms"] / 1000 < 0.99 * len(BODY)


def test_event_ids_parse_and_refuse():
    assert EventId.parse("r1:start").after_chunk == -1
    assert EventId.parse("r1:12").after_chunk == 12
    assert EventId.parse("r1:done").done
    with pytest.raises(MalformedEventId):
        EventId.parse("r1:12x")


def checkpoint(index: int, neurons: int = 64) -> Checkpoint:
    s = session(ReservoirParams(esn_size=neurons, membrane_depth=1))
    s.feed(bytes(index * 64 + 64))
    return Checkpoint("key", index, index * 64 + 64, hashlib.sha256(b"").hexdigest(), s.snapshot())


def test_the_checkpoint_store_keeps_few_per_stream_expires_them_and_stays_under_its_cap():
    now = [0.0]
    store = MemoryCheckpointStore(ttl_s=10, max_bytes=10**9, clock=lambda: now[0])
    for i in range(10):
        store.save("a", checkpoint(i))
    for i in range(10, 100):
        store.save("a", checkpoint(i, neurons=32))
    kept = sorted({store.latest("a", i).index for i in range(100)})
    assert len(kept) == PER_STREAM and kept[0] == 0 and kept[-1] == 99  # the first and the newest stay
    gaps = [b - a for a, b in zip(kept, kept[1:])]
    assert gaps == sorted(gaps, reverse=True)  # denser near the newest, where clients resume
    now[0] = 11
    assert store.latest("a", 100) is None and store.nbytes == 0

    one = checkpoint(0).nbytes
    store = MemoryCheckpointStore(ttl_s=10, max_bytes=3 * one, clock=lambda: now[0])
    for name in "abcde":
        store.save(name, checkpoint(0))
    assert len(store) == 3 and store.nbytes <= 3 * one
    assert store.latest("a", 0) is None and store.latest("e", 0) is not None


def test_sigterm_ends_open_streams_with_a_recoverable_error_and_resuming_works(start_server, server):
    """A deploy: the worker gets SIGTERM mid-stream; the stream resumes on another server.
    The input is long enough (about 3 s of compute) that SIGTERM lands while it computes."""
    import signal

    body = BODY * 8
    whole = list(events(post(url(server, "stream_chunks"), body=body)))
    digests, final = chunks_of(whole), whole[-1].json["final_digest"]
    doomed = start_server()
    response = post(url(doomed, "stream_chunks"), body=body)
    got = []
    for ev in events(response):
        got.append(ev)
        if ev.id and ev.id.endswith(":3"):
            doomed.process.send_signal(signal.SIGTERM)
    try:
        doomed.process.wait(timeout=20)
    except Exception:
        raise AssertionError(doomed.log()[-3000:])
    error = got[-1]
    assert error.json["type"] == "error" and error.json["recoverable"] is True
    assert error.json["retry_after_ms"] > 0 and error.retry == error.json["retry_after_ms"]
    last_chunk = next(ev for ev in reversed(got) if ev.json["type"] == "chunk")
    assert error.id == error.json["resume_from"] == last_chunk.id
    resume_from = error.json["resume_from"]
    assert resume_from.startswith(got[0].json["request_id"] + ":")
    after = list(events(post(url(server, "stream_chunks"), body=body, headers={"Last-Event-ID": resume_from})))
    assert after[-1].json["final_digest"] == final
    assert {**chunks_of(got), **chunks_of(after)} == digests
    assert not set(chunks_of(got)) & set(chunks_of(after))


@pytest.mark.parametrize("stream", STREAMS)
def test_get_with_dataset_id_resumes_at_several_points(server, whole, stream):
    digests, final, total = whole[stream]
    dataset_id = requests.post(server.url + "/deep_tree_echo/datasets", data=BODY, timeout=30,
                               headers={"Content-Type": "application/octet-stream"}).json()["dataset_id"]
    target = url(server, stream, f"&dataset_id={dataset_id}")
    for cut in (0, total // 3, total - 2):
        before = read_until_chunk(requests.get(target, stream=True, timeout=60), cut)
        after = list(events(requests.get(target, params={"last_event_id": before[-1].id}, stream=True, timeout=60)))
        assert sorted(chunks_of(after)) == list(range(cut + 1, total))
        assert {**chunks_of(before), **chunks_of(after)} == digests
        assert after[-1].json["final_digest"] == final


def test_without_checkpoints_a_resume_with_other_input_or_parameters_is_still_a_409(start_server):
    """Checkpoints off: the stream's fingerprint (parameters, hash of the input's head) still
    tells another input from the original, and the same input resumes to the same digest."""
    srv = start_server(DTESN_CHECKPOINT_MAX_BYTES="0")
    whole = list(events(post(url(srv, "stream_chunks"))))
    before = read_until_chunk(post(url(srv, "stream_chunks")), 10)
    last_id = before[-1].id
    other = post(url(srv, "stream_chunks"), body=BODY[:1000] + BODY[1000:][::-1], headers={"Last-Event-ID": last_id})
    assert other.status_code == 409 and "input differs" in other.json()["error"]
    shorter = post(url(srv, "stream_chunks"), body=BODY[:-1], headers={"Last-Event-ID": last_id})
    assert shorter.status_code == 200  # the head matches: a shorter tail is not seen before the stream starts
    shorter.close()
    params = post(url(srv, "stream_chunks").replace("frame_size=2", "frame_size=4"), headers={"Last-Event-ID": last_id})
    assert params.status_code == 409 and "other parameters" in params.json()["error"]
    after = list(events(post(url(srv, "stream_chunks"), headers={"Last-Event-ID": last_id})))
    assert after[-1].json["final_digest"] == whole[-1].json["final_digest"]
    assert {**chunks_of(before), **chunks_of(after)} == chunks_of(whole)


def test_a_clients_x_request_id_names_log_lines_only_never_a_stream(server):
    first = post(url(server, "stream_chunks"), headers={"X-Request-ID": "chosen-by-a-client"})
    assert first.headers["X-Request-ID"] == "chosen-by-a-client"
    got = read_until_chunk(first, 3)
    stream = got[0].json["request_id"]
    assert stream != "chosen-by-a-client" and got[-1].id.startswith(stream + ":")
    other = list(events(post(url(server, "stream_chunks"), body=BODY[::-1], headers={"X-Request-ID": "chosen-by-a-client"})))
    assert other[0].json["request_id"] not in (stream, "chosen-by-a-client")
    resumed = list(events(post(url(server, "stream_chunks"), headers={"Last-Event-ID": got[-1].id})))
    assert resumed[-1].json["type"] == "completion"


def test_the_resume_key_names_the_weights_construction(monkeypatch):
    """A deploy that draws other weights for the same parameters must not continue an old checkpoint."""
    from dtesn.engine import CONSTRUCTION, ReservoirParams
    from dtesn.streaming import spec as spec_module

    spec = spec_module.StreamSpec("stream_chunks", "r1", ReservoirParams(), source=None, chunk_size=1024,  # type: ignore[arg-type]
                                  heartbeat_interval=None)
    before = spec.stream_key
    monkeypatch.setattr(spec_module, "CONSTRUCTION", CONSTRUCTION + 1)
    assert spec.stream_key != before
