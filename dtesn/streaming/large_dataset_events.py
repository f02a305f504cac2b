"""The events of /stream_large_dataset: named events, binary payloads, measured ratios.

`event: metadata | heartbeat | chunk | completion | error`, with the guide's `type` names.
Metadata and completion are plain JSON (never compressed), so any client reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import sse
from .events import ChunkDone, Failed, Finished, Progress
from .fields import common_fields, error_fields, error_framing
from .payload import PayloadEncoder
from .resume import chunk_id, done_id
from .spec import StreamSpec

TARGET_CHUNKS = 100
MIN_CHUNK_BYTES = 512


def optimal_chunk_size(total_bytes: int | None, max_chunk_size: int) -> int:
    """About TARGET_CHUNKS chunks, within [MIN_CHUNK_BYTES, max_chunk_size]."""
    if total_bytes is None:
        return max_chunk_size
    return max(MIN_CHUNK_BYTES, min(max_chunk_size, -(-total_bytes // TARGET_CHUNKS)))


@dataclass(frozen=True)
class PayloadOptions:
    compression_level: int
    encoding: str
    dtype: str
    codecs: tuple[str, ...]


class LargeDatasetEvents:
    prefix = "large_dataset"

    def __init__(self, spec: StreamSpec, options: PayloadOptions) -> None:
        self.spec = spec
        self.options = options
        # Written by chunk() (one batch at a time), read by completion() after the last batch.
        self.original_bytes = 0
        self.compressed_bytes = 0
        self._chunk_prefix = self.chunk_prefix(self.chunk_type(options))
        self._encoder = PayloadEncoder(options.compression_level, options.encoding, options.dtype, options.codecs)

    def chunk_type(self, options: PayloadOptions) -> str:
        return "compressed_chunk" if options.compression_level > 0 else f"{self.prefix}_chunk"

    def chunk_prefix(self, kind: str) -> str:
        """The chunk events' constant fields, as JSON text without its closing brace."""
        constant = {"type": kind, "request_id": self.spec.request_id, "dtype": self.options.dtype,
                    "encoding": self.options.encoding}
        return sse.encode_json(constant)[:-1]

    def _event(self, name: str, kind: str, body: dict, **framing) -> bytes:
        return sse.event({**common_fields(kind, self.spec.request_id), **body}, name=name, **framing)

    def metadata(self) -> bytes:
        return self._event("metadata", f"{self.prefix}_metadata", self.metadata_fields(),
                           id=chunk_id(self.spec.request_id, -1))

    def metadata_fields(self) -> dict:
        spec, p, o = self.spec, self.spec.params, self.options
        size = spec.source.size
        rate = spec.estimated_rate
        return {
            "total_size_bytes": size,
            "optimal_chunk_size": spec.chunk_size,
            "estimated_chunks": None if size is None else -(-size // spec.chunk_size),
            "estimated_duration_ms": None if rate is None or size is None
            else round(size / p.frame_size / rate * 1000, 1),
            "compression_level": o.compression_level,
            "encoding": o.encoding,
            "dtype": o.dtype,
            "codecs": list(o.codecs),
            "membranes": p.membranes,
            "membrane_depth": p.membrane_depth,
            "esn_size": p.esn_size,
            "neurons": p.neurons,
            "frame_size": p.frame_size,
            "seed": p.seed,
            "timeout_prevention": spec.heartbeat_interval is not None,
            "heartbeat_interval_s": spec.heartbeat_interval,
        }

    def heartbeat(self, progress: Progress) -> bytes:
        return self._event("heartbeat", f"{self.prefix}_heartbeat", {
            "progress": progress.fraction,
            "chunks_processed": progress.chunks,
            "bytes_processed": progress.bytes_done,
            "elapsed_ms": round(progress.elapsed_s * 1000, 1),
            "est_remaining_ms": None if progress.remaining_s is None else round(progress.remaining_s * 1000, 1),
        })

    def chunks(self, dones: list[ChunkDone]) -> bytes:
        return self.binary_chunks(dones, self._encoder, self._chunk_prefix)

    def binary_chunks(self, dones: list[ChunkDone], encoder: PayloadEncoder, prefix: str) -> bytes:
        """Chunk events, formatted from a per-stream prefix: at 50 MB/s a stream sends
        thousands a second, and building a dict for json to walk cost a fifth of the time."""
        payloads = encoder.encode_many([done.result.features for done in dones])
        rid, now = self.spec.request_id, f"{time.time():.3f}"  # one batch: computed together
        events = []
        for done, payload in zip(dones, payloads):
            self.original_bytes += payload.original_size
            self.compressed_bytes += payload.compressed_size
            steps, membranes = done.result.features.shape
            progress = "null" if done.fraction is None else repr(done.fraction)
            events.append(
                f'id: {rid}:{done.index}\nevent: chunk\ndata: {prefix},"timestamp":{now},"index":{done.index},'
                f'"offset":{done.offset},"bytes":{done.nbytes},"steps":{steps},"progress":{progress},'
                f'"processing_time_ms":{done.compute_s * 1000:.3f},"shape":[{steps},{membranes}],'
                f'"compression_method":"{payload.method}","transform":"{payload.transform}",'
                f'"original_size":{payload.original_size},"compressed_size":{payload.compressed_size},'
                f'"data":"{payload.data}","energy":[{",".join(map(repr, done.result.energy))}],'
                f'"digest":"{done.result.digest}"}}\n\n'
            )
        return "".join(events).encode()

    def completion(self, done: Finished, wire_bytes: int) -> bytes:
        seconds = done.duration_s
        return self._event("completion", f"{self.prefix}_completion", {
            "total_chunks": done.chunks,
            "total_bytes": done.nbytes,
            "total_steps": done.steps,
            "duration_ms": round(seconds * 1000, 3),
            "throughput_mb_per_sec": round(done.computed_bytes / seconds / 1e6, 3) if seconds > 0 else None,
            "original_payload_bytes": self.original_bytes,
            "compressed_payload_bytes": self.compressed_bytes,
            "compression_ratio": round(self.compressed_bytes / self.original_bytes, 6) if self.original_bytes else None,
            "wire_bytes": wire_bytes,
            "final_digest": done.final_digest,
        }, id=done_id(self.spec.request_id))

    def error(self, failed: Failed) -> bytes:
        return self._event("error", f"{self.prefix}_error", error_fields(failed), **error_framing(failed))
