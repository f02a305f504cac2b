"""The events of /stream_process and /stream_chunks (unnamed events, as in the guide).

Clients use `onmessage` and switch on `type`: metadata, heartbeat, chunk, completion, error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sse
from .compression import pack
from .events import ChunkDone, Failed, Finished, Progress
from .fields import common_fields, error_fields, error_framing
from .resume import chunk_id, done_id
from .spec import StreamSpec, is_large


@dataclass(frozen=True)
class ChunkOptions:
    compress: bool
    processing_mode: str


def features_json(features: np.ndarray, values_per_piece: int = 16384) -> str:
    """JSON of a (steps, membranes) array, encoded a block of rows at a time.

    The encoder holds the GIL for its whole call: a chunk of 1.6M values (frame 1, depth 8)
    would keep the hub (heartbeats, other streams) waiting 60 ms. Block by block (about
    0.6 ms each), the interpreter hands the GIL over between blocks.
    """
    rows = max(1, values_per_piece // max(1, features.shape[1]))
    if len(features) <= rows:
        return sse.encode_json(features)
    pieces = []
    for i in range(0, len(features), rows):
        pieces.append(sse.encode_json(features[i : i + rows])[1:-1])
    return "[" + ",".join(pieces) + "]"


class ChunkEvents:
    def __init__(self, spec: StreamSpec, options: ChunkOptions) -> None:
        self.spec = spec
        self.options = options

    def _common(self, kind: str) -> dict:
        return common_fields(kind, self.spec.request_id)

    def metadata(self) -> bytes:
        spec, p = self.spec, self.spec.params
        size = spec.source.size
        rate = spec.estimated_rate
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
            "processing_mode": self.options.processing_mode,
            "chunk_size": spec.chunk_size,
            "estimated_chunks": None if size is None else -(-size // spec.chunk_size),
            "estimated_duration_ms": None if rate is None or estimated_steps is None else round(estimated_steps / rate * 1000, 1),
            "heartbeat_interval_s": spec.heartbeat_interval,
            "timeout_prevention_enabled": spec.heartbeat_interval is not None,
            "compression_enabled": self.options.compress,
            "large_dataset_mode": is_large(spec),
            "server_rendered": True,
        }, id=chunk_id(spec.request_id, -1))

    def heartbeat(self, progress: Progress) -> bytes:
        return sse.event({
            **self._common("heartbeat"),
            "progress": progress.fraction,
            "chunks_processed": progress.chunks,
            "bytes_processed": progress.bytes_done,
            "elapsed_ms": round(progress.elapsed_s * 1000, 1),
            "estimated_remaining_ms": None if progress.remaining_s is None else round(progress.remaining_s * 1000, 1),
        })

    def chunks(self, dones: list[ChunkDone]) -> bytes:
        return b"".join(map(self._chunk, dones))

    def _chunk(self, done: ChunkDone) -> bytes:
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
            "progress": done.fraction,
            "processing_time_ms": round(done.compute_s * 1000, 3),
        }
        packed = pack(result.encode("utf-8")) if self.options.compress else None
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

    def completion(self, done: Finished, wire_bytes: int) -> bytes:
        return sse.event({
            **self._common("completion"),
            "total_chunks": done.chunks,
            "bytes_processed": done.nbytes,
            "total_steps": done.steps,
            "duration_ms": round(done.duration_s * 1000, 3),
            "throughput_bytes_per_sec": round(done.computed_bytes / done.duration_s) if done.duration_s > 0 else None,
            "final_digest": done.final_digest,
        }, id=done_id(self.spec.request_id))

    def error(self, failed: Failed) -> bytes:
        return sse.event({**self._common("error"), **error_fields(failed)}, **error_framing(failed))
