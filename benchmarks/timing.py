"""Timing and memory helpers: interleaved repeats, medians, paired ratios, tracemalloc peaks.

The machine is shared and noisy, so every comparison is made between methods measured in the
same run, interleaved round by round (the order rotates each round), and summarised by medians.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timings:
    """Seconds per round for each method, measured interleaved."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, method: str) -> float:
        """Median seconds of one method."""
        return statistics.median(self.seconds[method])

    def paired_ratio(self, method: str, reference: str) -> float:
        """Median over rounds of method's time / reference's time in the same round."""
        pairs = zip(self.seconds[method], self.seconds[reference], strict=True)
        return statistics.median(ours / peer for ours, peer in pairs)


def time_once(run: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call and its result, after a garbage collection."""
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def interleaved(methods: Mapping[str, Callable[[], Any]], rounds: int) -> Timings:
    """Time each method once per round, rotating the order every round."""
    names = list(methods)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, _ = time_once(methods[name])
            seconds[name].append(elapsed)
    return Timings(seconds)


def peak_memory(run: Callable[[], Any]) -> int:
    """Peak bytes traced by tracemalloc while `run` executes, above what existed before."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before
