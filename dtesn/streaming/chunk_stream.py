"""The event stream of /stream_process and /stream_chunks (unnamed events, as in the guide).

Clients use `onmessage` and switch on `type`: metadata, heartbeat, chunk, completion, error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..engine import ReservoirParams
from . import rates, sse
from .compression import pack
from .pump import Batch, ChunkDone, Failed, Finished, Heartbeat, Progress, Pump
from .source import InputSource

#: Inputs above this are "large": a heartbeat goes out before processing starts.
LARGE_INPUT_BYTES = 50 * 1024
RETRY_MS = 3000


@dataclass(frozen=True)
class ChunkStreamSpec:
    request_id: str
    params: ReservoirParams
    source: InputSource
    chunk_size: int
    heartbeat_interval: float | None  # None: heartbeats off (timeout_prevention=false)
    compress: bool
    processing_mode: str


def chunk_stream(
    spec: ChunkStreamSpec,
    *,
    client_socket=None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Iterator[bytes]:
    base = _Events(spec)
    pump = Pump(spec.params, spec.source, spec.chunk_size, base.chunk, client_socket=client_socket, on_chunk=on_chunk)
    try:
        yield sse.retry(RETRY_MS) + base.metadata()
        size = spec.source.size
        if size is None or size > LARGE_INPUT_BYTES:
            yield base.heartbeat(pump.progress())
        for item in pump.items(spec.heartbeat_interval):
            if isinstance(item, Batch):
                yield item.events
            elif isinstance(item, Heartbeat):
                yield base.heartbeat(item.progress)
            elif isinstance(item, Finished):
                yield base.completion(item)
            elif isinstance(item, Failed):
                yield base.error(item)
    finally:
        pump.close()


def features_json(features: np.ndarray, values_per_piece: int = 4096) -> str:
    """JSON of a (steps, membranes) array, encoded a block of rows at a time.

    json.dumps holds the GIL for its whole call; a chunk of 300k values would keep the hub
    (heartbeats, other streams) waiting for a third of a second. Block by block, the
    interpreter can hand the GIL over between blocks.
    """
    rows = max(1, values_per_piece // max(1, features.shape[1]))
    pieces = (sse.encode_json(features[i : i + rows].tolist())[1:-1] for i in range(0, len(features), rows))
    return "[" + ",".join(pieces) + "]"


class _Events:
    def __init__(self, spec: ChunkStreamSpec) -> None:
        self.spec = spec

    def _common(self, kind: str) -> dict:
        return {"type": kind, "request_id": self.spec.request_id, "timestamp": round(time.time(), 3)}

    def metadata(self) -> bytes:
        spec, p = self.spec, self.spec.params
        size = spec.source.size
        rate = rates.steps_per_sec(p)
        estimated_steps = None if size is None else -(-size // p.frame_size)
        return sse.event({
            **self._common("metadata"),
            "input_bytes": size,
            "membrane_depth": p.membrane_depth,
            "esn_size": p.esn_size,
            "neurons": p.neurons,
            "membranes": p.membranes,
            "frame_size": p.frame_size,
            "seed": p.seed,
            "processing_mode": spec.processing_mode,
            "chunk_size": spec.chunk_size,
            "estimated_chunks": None if size is None else -(-size // spec.chunk_size),
            "estimated_duration_ms": None if rate is None or estimated_steps is None else round(estimated_steps / rate * 1000, 1),
            "heartbeat_interval_s": spec.heartbeat_interval,
            "timeout_prevention_enabled": spec.heartbeat_interval is not None,
            "compression_enabled": spec.compress,
            "large_dataset_mode": size is None or size > LARGE_INPUT_BYTES,
            "server_rendered": True,
        })

    def heartbeat(self, progress: Progress) -> bytes:
        return sse.event({
            **self._common("heartbeat"),
            "progress": progress.fraction,
            "chunks_processed": progress.chunks,
            "bytes_processed": progress.bytes_done,
            "elapsed_ms": round(progress.elapsed_s * 1000, 1),
            "estimated_remaining_ms": None if progress.remaining_s is None else round(progress.remaining_s * 1000, 1),
        })

    def chunk(self, done: ChunkDone) -> bytes:
        result = (
            f'{{"features":{features_json(done.result.features)},'
            f'"energy":{sse.encode_json(done.result.energy)},"digest":"{done.result.digest}"}}'
        )
        body = {
            **self._common("chunk"),
            "chunk_index": done.index,
            "offset": done.offset,
            "bytes": done.nbytes,
            "steps": done.result.steps,
            "progress": done.progress.fraction,
            "processing_time_ms": round(done.compute_s * 1000, 3),
        }
        packed = pack(result.encode("utf-8")) if self.spec.compress else None
        if packed is None:
            body["compressed"] = False
            text = sse.encode_json(body)[:-1] + f',"result":{result}}}'
        else:
            body.update(
                compressed=True,
                encoding=packed.encoding,
                data=packed.data,
                original_size=packed.original_size,
                compressed_size=packed.compressed_size,
            )
            text = sse.encode_json(body)
        return sse.event(text, id=f"{self.spec.request_id}:{done.index}")

    def completion(self, done: Finished) -> bytes:
        return sse.event({
            **self._common("completion"),
            "total_chunks": done.chunks,
            "bytes_processed": done.nbytes,
            "total_steps": done.steps,
            "duration_ms": round(done.duration_s * 1000, 3),
            "throughput_bytes_per_sec": round(done.nbytes / done.duration_s) if done.duration_s > 0 else None,
            "final_digest": done.final_digest,
        }, id=f"{self.spec.request_id}:done")

    def error(self, failed: Failed) -> bytes:
        return sse.event({
            **self._common("error"),
            "error": failed.message,
            "recoverable": failed.recoverable,
            "chunk_index": failed.index,
            "progress": failed.progress.fraction,
        })
