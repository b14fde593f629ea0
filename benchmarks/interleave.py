"""Shared by the benchmark scripts: interleaved repetitions (A B A B ...), min and median, and the machine's load.

Every figure in benchmarks/RESULTS.md comes from variants measured in the same run, one after the other within
each round, over several rounds, so that a burst of load from other processes hits every variant alike; the best
(least disturbed) and the median measurement are printed, and the load average beside each table. On a shared
machine CPU time (`time.process_time`, one torch thread) moves far less with other processes' load than wall time,
so speeds are given per CPU-second as well.
"""

import os
import statistics
from typing import Callable


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def interleaved(variants: dict[str, Callable[[int], dict]], rounds: int) -> dict[str, list[dict]]:
    """Runs each variant once per round (called with the round number), in the same order every round; returns every
    variant's per-round results."""
    results = {name: [] for name in variants}
    for number in range(rounds):
        for name, run in variants.items():
            results[name].append(run(number))
    return results


def number(value: float) -> str:
    """Three significant digits, without exponents: 0.995, 12.5, 213, 1,480."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def min_median(values) -> str:
    """"min / median" of a list of numbers (times, sizes), for a table cell."""
    values = list(values)
    return f"{number(min(values))} / {number(statistics.median(values))}"


def max_median(values) -> str:
    """"max / median" of a list of rates (the best and the typical round), for a table cell."""
    values = list(values)
    return f"{number(max(values))} / {number(statistics.median(values))}"


def median(values) -> float:
    return statistics.median(list(values))
