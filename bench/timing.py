"""Timing shared by the benchmarks."""
from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Smallest wall time of `runs` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
