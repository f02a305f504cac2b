"""glibc's malloc, told to keep the megabyte buffers a stream frees for the next to reuse.

By default glibc serves an allocation above its mmap threshold (128 KiB at start, raised as
such blocks are freed) with a mapping of its own, unmapped again on free, and returns the
top of its heap to the kernel whenever more than twice that threshold lies free there. A
stream allocates and frees buffers of megabytes every batch (the body's reads and their join,
the engine's arrays, the events' text) and zlib's 256 KiB state for every compressed chunk,
so the worker kept faulting in fresh zeroed pages (about 100 a MB streamed at the
large_dataset goal configuration; 0.2-54 with the thresholds fixed): zlib.compress of a
256-byte payload took 63-90 µs in a fresh process, 8.5-19 µs with them fixed.

Both thresholds fixed at 32 MiB (glibc's own ceiling for the mmap threshold on 64-bit; fixing
them also stops its adjusting), through the server (`python -m bench.ab`, 8 rounds each): as
set here, in the gunicorn master, the goal configuration 1.13-1.16x MB/s at 0.85-0.90x the
worker's CPU per MB, its ceiling configuration 1.07-1.11x at 0.85-0.92x, the defaults 0.97x
(an A/A run there gives 1.03); set as MALLOC_* variables (`--env`), 1.19-1.20x at 0.79x.
Either threshold alone was worse than neither (0.63-0.66x MB/s): the other one's default
then unmaps or trims every buffer. 8 and 16 MiB gained less (1.13x at 0.96x), 4 and 8 MiB
lost (0.82x): a 4 MiB batch is then mapped again every time. The price is memory
kept free for reuse: a worker's RSS after a 512 MB stream 132 MB against 114, after six
concurrent 64 MB streams 145 against 116 (peak 181 against 186); it no longer returns to the
kernel what it will need again in a moment.
"""

from __future__ import annotations

import ctypes
import platform

from ..settings import MALLOC_THRESHOLD_MAX

#: mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_buffers(threshold_bytes: int) -> bool:
    """Serve allocations below `threshold_bytes` from the heap, and keep up to that much of
    it free before trimming; True when applied. 0 leaves glibc's thresholds as they are, and
    a C library that is not glibc (musl, macOS) is left alone: mallopt is glibc's."""
    if threshold_bytes <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    if threshold_bytes > MALLOC_THRESHOLD_MAX:
        raise ValueError(f"threshold_bytes must be at most {MALLOC_THRESHOLD_MAX} (glibc's limit)")
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The mmap threshold first: mallopt returns 0 when it refuses a value, and then the trim
    # threshold alone would make things worse than neither.
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, threshold_bytes))
