"""Timing a call the way every podplug benchmark does (bench/, `podplug bench`)."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def samples_ns(fn: Callable[[], object], n: int) -> list[int]:
    """``n`` timed calls of ``fn`` in nanoseconds, sorted, after a warm-up (so
    caches and the allocator are settled), with the garbage collector off."""
    for _ in range(min(200, max(n // 5, 3))):
        fn()
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    samples.sort()
    return samples


def p99(sorted_samples: list[int]) -> int:
    return sorted_samples[max(int(len(sorted_samples) * 0.99) - 1, 0)]


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median, p99) in microseconds of ``n`` calls after a warm-up, GC off."""
    s = samples_ns(fn, n)
    return statistics.median(s) / 1000, p99(s) / 1000
