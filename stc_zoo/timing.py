"""Wall-clock timing as the benchmarks report it: median of many runs, warm-up excluded."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from tqdm.auto import tqdm


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 5, progress: str | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup`` untimed ones.

    ``fn`` must finish its work before returning (synchronise CUDA inside it). ``progress``
    names a progress bar over the timed runs (none when None).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in tqdm(range(runs), desc=progress, unit="run", leave=False, disable=progress is None):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
