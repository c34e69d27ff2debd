"""What the benchmarks share: CPU pinning, a server in a child process, rates per round, percentiles, peak memory.

Why: each benchmark prints ours against a baseline measured in the same run, and the two figures only compare when
they are taken the same way. The hazards this handles: a server on the client's core makes the client's figures
the server's (it runs in a spawned child, pinned to another core when there is one); one round on a shared, busy
machine is noise (rounds are summarised by their median, in wall-clock and in CPU time of this process); and a
server process left behind outlives the benchmark (the child is always terminated, whatever happened).
Figures are printed by each benchmark in its own units; nothing here asserts a target.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SERVER_CORE = 0  # where a benchmark's server process runs, when the machine has a second core
CLIENT_CORE = 1
SERVER_STOP_SECONDS = 5.0


def pin_to_core(core: int) -> None:
    """Keep this process on one core when the machine has several (Linux only; a no-op elsewhere)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


@contextmanager
def server_process(target: Callable[..., None], *args: object, ready_timeout: float) -> Iterator[Any]:
    """Run `target(*args, ready_queue)` in a spawned process and yield the first thing it puts on `ready_queue`
    (its port, and whatever else it reports); the process is terminated on the way out."""
    context = multiprocessing.get_context("spawn")
    ready_queue = context.Queue()
    process = context.Process(target=target, args=(*args, ready_queue), daemon=True)
    process.start()
    try:
        yield ready_queue.get(timeout=ready_timeout)
    finally:
        process.terminate()
        process.join(SERVER_STOP_SECONDS)


async def rates(run: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """Items that `run` handled per wall-clock second, and per CPU second of this process (steadier when busy)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = await run()
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu_started)


@dataclass(frozen=True, slots=True)
class RoundRates:
    """The rates of several rounds of one measurement: medians, and every round's wall-clock rate for the record."""

    wall: float
    cpu: float
    rounds: tuple[float, ...]

    @classmethod
    def of(cls, rounds: Sequence[tuple[float, float]]) -> RoundRates:
        return cls(
            wall=statistics.median(wall for wall, _ in rounds),
            cpu=statistics.median(cpu for _, cpu in rounds),
            rounds=tuple(wall for wall, _ in rounds),
        )

    def shown(self) -> str:
        return ", ".join(f"{rate:,.0f}" for rate in self.rounds)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
