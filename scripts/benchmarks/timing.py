"""Timing for benchmark scripts: the median wall time of repeated runs."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(job: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``job``."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
