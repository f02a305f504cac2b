"""`dtesn-stream`: stream an input through a dtesn-stream server from the shell.

    dtesn-stream stream_large_dataset --file big.bin --param esn_size=256 --features out.npy

Events go to stdout (or --jsonl OUT) as JSON lines; a progress bar (bytes, rate, ETA from the
heartbeats) goes to stderr when it is a terminal. A file larger than UPLOAD_ABOVE is uploaded
as a dataset first and streamed by GET: a reconnect then resends nothing. The client resumes
across dropped connections and server restarts (see dtesn.client.Client).

Exit status: 0 on completion, 1 on a fatal error event, 2 on a usage error (bad arguments, or
a request the server refuses with 4xx), 3 when it gave up reconnecting.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from .client import Client, ClientError, GaveUp, StreamError

ENDPOINTS = ("stream_process", "stream_chunks", "stream_large_dataset", "stream_optimized")
UPLOAD_ABOVE = 8 << 20  # bytes: past this a file goes up once as a dataset


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dtesn-stream", description="Stream an input through a dtesn-stream server.")
    parser.add_argument("endpoint", choices=ENDPOINTS)
    parser.add_argument("--url", default=os.environ.get("DTESN_URL", "http://127.0.0.1:8000"),
                        help="the server (default $DTESN_URL or http://127.0.0.1:8000)")
    parser.add_argument("--api-key", default=os.environ.get("DTESN_API_KEY"), help="default $DTESN_API_KEY")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="the input, a file (large ones are uploaded as a dataset first)")
    source.add_argument("--data", help="the input, as text")
    source.add_argument("--dataset", help="the id of an uploaded dataset")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="a request field, e.g. esn_size=256")
    parser.add_argument("--jsonl", type=Path, help="write the events here as JSON lines (default: stdout)")
    parser.add_argument("--features", type=Path, help="save the decoded features of every chunk as one .npy array")
    parser.add_argument("--resume-from", default="", metavar="EVENT_ID",
                        help="continue a stream after this event id (a run that stopped: its last JSON line's id)")
    parser.add_argument("--max-attempts", type=int, default=8, help="failed reconnects in a row before giving up")
    parser.add_argument("--deadline", type=float, help="seconds for the whole stream, reconnects included")
    parser.add_argument("--idle-timeout", type=float, help="seconds without a byte before reconnecting "
                        "(default: three heartbeat intervals)")
    args = parser.parse_args(argv)
    fields: dict[str, str] = {}
    for item in args.param:
        key, equals, value = item.partition("=")
        if not equals or not key:
            parser.error(f"--param takes K=V, got {item!r}")
        fields[key] = value
    args.fields = fields
    if args.file is not None and not args.file.is_file():
        parser.error(f"--file {args.file}: no such file")
    return args


class Progress:
    """One line on stderr, redrawn: bytes done, rate, ETA (from heartbeats and chunk events)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.started = time.monotonic()
        self.shown = False

    def update(self, event: dict) -> None:
        done = event.get("bytes_processed", event.get("offset", 0) + event.get("bytes", 0))
        fraction = event.get("progress")
        if not isinstance(fraction, int | float):
            return
        elapsed = max(1e-9, time.monotonic() - self.started)
        remaining_ms = event.get("estimated_remaining_ms", event.get("est_remaining_ms"))
        eta = f"ETA {remaining_ms / 1000:.0f}s" if isinstance(remaining_ms, int | float) else ""
        bar = "#" * int(30 * min(1.0, fraction))
        self.out.write(f"\r[{bar:<30}] {100 * fraction:5.1f}% {done / 1e6:8.2f} MB {done / 1e6 / elapsed:7.2f} MB/s {eta:<10}")
        self.out.flush()
        self.shown = True

    def note(self, message: str) -> None:
        self.out.write(("\n" if self.shown else "") + message + "\n")
        self.out.flush()
        self.shown = False

    def end(self) -> None:
        if self.shown:
            self.out.write("\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None

    def on_retry(reason: str, delay: float) -> None:
        message = f"dtesn-stream: reconnecting in {delay:.1f} s ({reason})"
        if progress is not None:
            progress.note(message)
        else:
            print(message, file=sys.stderr)

    client = Client(args.url, args.api_key, max_attempts=args.max_attempts, deadline=args.deadline,
                    idle_timeout=args.idle_timeout, on_retry=on_retry)
    out = args.jsonl.open("wb") if args.jsonl else sys.stdout.buffer
    features: list[np.ndarray] = []
    try:
        kwargs: dict[str, Any] = dict(args.fields)
        if args.dataset:
            kwargs["dataset_id"] = args.dataset
        elif args.file is not None and args.file.stat().st_size > UPLOAD_ABOVE:
            kwargs["dataset_id"] = client.upload(args.file)
        else:
            kwargs["data"] = args.file if args.file is not None else args.data
        for event in client.stream(args.endpoint, last_event_id=args.resume_from, **kwargs):
            decoded = event.pop("features", None)
            if decoded is not None:
                features.append(decoded)
            out.write(orjson.dumps(event) + b"\n")
            out.flush()
            if progress is not None:
                progress.update(event)
    except ClientError as exc:
        print(f"dtesn-stream: the server refused the request: {exc}", file=sys.stderr)
        return 2
    except StreamError as exc:
        print(f"dtesn-stream: the stream failed: {exc}", file=sys.stderr)
        return 1
    except GaveUp as exc:
        print(f"dtesn-stream: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    finally:
        if progress is not None:
            progress.end()
        if args.jsonl:
            out.close()
    if args.features is not None:
        np.save(args.features, np.concatenate(features) if features else np.zeros((0, 0), np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
