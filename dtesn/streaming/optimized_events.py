"""The events of /stream_optimized: /stream_large_dataset's, shaped by a bandwidth policy.

The policy (config/bandwidth.toml) sets the payload compression, the write buffer, the
heartbeat interval and `retry:`; with `auto` the Tuner moves between policies by the measured
delivery rate and each move is an `event: policy`. The chunk grid (event ids) stays the
starting policy's, so that a resumed stream lines up with the one it continues.

With progressive rendering, a chunk whose features as JSON would exceed the policy's
`piece_bytes` is sent as `event: partial` pieces (rows of features, renderable on arrival)
followed by the chunk event as the final marker (energy, digest, no data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import groupby

from . import sse
from .bandwidth import Move, Policy, Tuner
from .compression import CODECS
from .events import ChunkDone
from .large_dataset_events import LargeDatasetEvents, PayloadOptions
from .payload import PayloadEncoder
from .resume import chunk_id
from .spec import StreamSpec

#: Bytes of one float32 feature as JSON text (a repr is 8-12 digits, a sign, a comma).
JSON_BYTES_PER_VALUE = 20


@dataclass(frozen=True)
class OptimizedOptions:
    hint: str
    adaptive_compression: bool
    progressive_rendering: bool
    encoding: str
    dtype: str
    heartbeat_override: float | None  # DTESN_HEARTBEAT_INTERVAL, when set
    codecs: tuple[str, ...] = CODECS  # what the client can decode (a browser: gzip, zlib)


class OptimizedEvents(LargeDatasetEvents):
    prefix = "optimized"

    def __init__(self, spec: StreamSpec, tuner: Tuner, options: OptimizedOptions) -> None:
        self.tuner = tuner
        self.optimized = options
        first = tuner.policy
        super().__init__(spec, self._payload_options(first))
        self._encoders = {  # one per policy, each keeping its own back-off state
            name: self._encoder if name == first.name
            else PayloadEncoder(p.compression_level, options.encoding, options.dtype, self._payload_options(p).codecs)
            for name, p in tuner.policies.items()
        }

    def _payload_options(self, policy: Policy) -> PayloadOptions:
        allowed = self.optimized.codecs
        if self.optimized.adaptive_compression:
            codecs = allowed
        else:  # the policy's codec, unless the client cannot decode it
            codecs = (policy.codec,) if policy.codec in allowed else allowed[:1]
        return PayloadOptions(policy.compression_level, self.optimized.encoding, self.optimized.dtype, codecs)

    def chunk_type(self, options: PayloadOptions) -> str:
        return "optimized_chunk"

    # -- Pacing -------------------------------------------------------------------------

    @property
    def write_buffer(self) -> int:
        return self.tuner.policy.write_buffer

    @property
    def socket_buffer(self) -> int:
        return self.tuner.policy.socket_buffer

    @property
    def heartbeat_interval(self) -> float | None:
        return self.optimized.heartbeat_override or self.tuner.policy.heartbeat_interval

    def written(self, nbytes: int, blocked_s: float) -> bytes:
        move = self.tuner.written(nbytes, blocked_s)
        return b"" if move is None else self.policy_event(move)

    def policy_event(self, move: Move) -> bytes:
        rate = None if move.measured_bytes_per_sec is None else round(move.measured_bytes_per_sec)
        return self._event("policy", "optimized_policy", {
            "from": move.old.name,
            "to": move.new.name,
            "measured_bytes_per_sec": rate,
            "writes_blocked": rate is not None,
            "policy": _describe(move.new),
        }, retry_ms=move.new.retry_ms)

    # -- events ---------------------------------------------------------------------------

    def metadata(self) -> bytes:
        fields = {
            **self.metadata_fields(),
            "bandwidth_hint": self.optimized.hint,
            "policy": _describe(self.tuner.policy),
            "adaptive_compression": self.optimized.adaptive_compression,
            "progressive_rendering": self.optimized.progressive_rendering,
            "heartbeat_interval_s": self.heartbeat_interval,
        }
        return self._event("metadata", f"{self.prefix}_metadata", fields, id=chunk_id(self.spec.request_id, -1),
                           retry_ms=self.tuner.policy.retry_ms)

    def chunks(self, dones: list[ChunkDone]) -> bytes:
        policy = self.tuner.policy  # read once: the hub may move it meanwhile
        encoder = self._encoders[policy.name]
        out = []
        for progressive, group in groupby(dones, key=lambda done: self._progressive_under(policy, done)):
            run = list(group)
            out.append(b"".join(self._progressive(done, policy) for done in run) if progressive
                       else self.binary_chunks(run, encoder, self._chunk_prefix))
        return b"".join(out)

    def _progressive_under(self, policy: Policy, done: ChunkDone) -> bool:
        return self.optimized.progressive_rendering and done.result.features.size * JSON_BYTES_PER_VALUE > policy.piece_bytes

    def _progressive(self, done: ChunkDone, policy: Policy) -> bytes:
        """Rows of features in pieces of about `piece_bytes`, then the chunk's marker event."""
        features = done.result.features
        steps, membranes = features.shape
        rows_per_piece = max(1, policy.piece_bytes // (membranes * JSON_BYTES_PER_VALUE))
        head = (f'{{"type":"optimized_partial","request_id":"{self.spec.request_id}","timestamp":{time.time():.3f},'
                f'"index":{done.index},"path":"features"')
        pieces = []
        for start in range(0, steps, rows_per_piece):
            rows = sse.encode_json(features[start : start + rows_per_piece])
            pieces.append(f'event: partial\ndata: {head},"start":{start},"rows":{rows}}}\n\n')
        marker = self._event("chunk", "optimized_chunk", {
            "index": done.index,
            "offset": done.offset,
            "bytes": done.nbytes,
            "steps": steps,
            "progress": done.fraction,
            "processing_time_ms": round(done.compute_s * 1000, 3),
            "shape": [steps, membranes],
            "progressive": True,
            "pieces": len(pieces),
            "energy": done.result.energy,
            "digest": done.result.digest,
        }, id=chunk_id(self.spec.request_id, done.index))
        return "".join(pieces).encode() + marker


def _describe(policy: Policy) -> dict:
    return {
        "name": policy.name,
        "compression_level": policy.compression_level,
        "codec": policy.codec,
        "write_buffer": policy.write_buffer,
        "piece_bytes": policy.piece_bytes,
        "heartbeat_interval_s": policy.heartbeat_interval,
        "retry_ms": policy.retry_ms,
        "socket_buffer": policy.socket_buffer,
    }
