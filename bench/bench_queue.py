"""Benchmark of the work queue: throughput with 10,000 keys and add-to-reconcile latency, against a bare asyncio.Queue.

What it measures, each against a bare `asyncio.Queue` run the same way in the same process (the baseline):

1. burst: 50,000 adds over 10,000 distinct keys (every key added five times, shuffled), processed by N workers running
   a trivial reconcile. The WorkQueue collapses duplicates, so it reconciles 10,000 times; the bare queue 50,000 times.
   Printed: wall time to drain, keys/s, and the ratio of the two wall times.
2. trickle: 10,000 keys added one at a time with a yield to the loop in between (a steady event stream), and the
   latency from `add` to the start of its reconcile, p50 and p99.
3. raw: add + get + done of one key per cycle on an idle queue, without workers (the queue's own cost per key).

Run: `.venv/bin/python bench/bench_queue.py [--keys 10000] [--duplicates 5] [--workers 4]`. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from _harness import percentile
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.reconciler import ObjectKey, Result
from nomad_operator.runtime.workers import ReconcileWorkers


@dataclass
class Run:
    seconds: float
    reconciles: int
    latencies: list[float]

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)


Adder = Callable[[ObjectKey], None]


async def feed(adds: list[ObjectKey], add: Adder, *, trickle: bool) -> None:
    for key in adds:
        add(key)
        if trickle:
            await asyncio.sleep(0)


async def run_workqueue(adds: list[ObjectKey], *, workers: int, trickle: bool) -> Run:
    queue = WorkQueue[ObjectKey](name="bench", max_keys=len(adds) + 1)
    added_at: dict[ObjectKey, float] = {}
    latencies: list[float] = []
    expected = len(set(adds))
    finished = asyncio.Event()
    count = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal count
        latencies.append(time.perf_counter() - added_at.pop(key))
        count += 1
        if count == expected:
            finished.set()
        return Result()

    def add(key: ObjectKey) -> None:
        added_at.setdefault(key, time.perf_counter())
        queue.add(key)

    runner = ReconcileWorkers(name="bench", queue=queue, reconcile=reconcile, concurrency=workers)
    runner.start()
    started = time.perf_counter()
    await feed(adds, add, trickle=trickle)
    await finished.wait()
    seconds = time.perf_counter() - started
    await runner.stop(grace=5)
    return Run(seconds, count, latencies)


async def run_asyncio_queue(adds: list[ObjectKey], *, workers: int, trickle: bool) -> Run:
    queue: asyncio.Queue[tuple[ObjectKey, float]] = asyncio.Queue()
    latencies: list[float] = []

    async def reconcile(key: ObjectKey) -> Result:
        return Result()

    async def worker() -> None:
        while True:
            key, added = await queue.get()
            latencies.append(time.perf_counter() - added)
            await reconcile(key)
            queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    started = time.perf_counter()
    await feed(adds, lambda key: queue.put_nowait((key, time.perf_counter())), trickle=trickle)
    await queue.join()
    seconds = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Run(seconds, len(latencies), latencies)


def raw_cycles(count: int) -> float:
    """Seconds per add + get_nowait + done on an idle queue."""
    queue = WorkQueue[ObjectKey](name="raw")
    keys = [ObjectKey("Job", "default", f"job-{number}") for number in range(count)]
    started = time.perf_counter()
    for key in keys:
        queue.add(key)
        queue.done(queue.get_nowait())
    return (time.perf_counter() - started) / count


def best_of(repeats: int, make: Callable[[], Coroutine[Any, Any, Run]]) -> Run:
    runs = [asyncio.run(make()) for _ in range(repeats)]
    return min(runs, key=lambda run: run.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--duplicates", type=int, default=5, help="adds per key in the burst")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the fastest is reported")
    options = parser.parse_args()

    keys = [ObjectKey("Job", "default", f"job-{number}") for number in range(options.keys)]
    burst = keys * options.duplicates
    random.Random(4).shuffle(burst)
    print(f"work queue benchmark: {options.keys} keys, {options.workers} workers, best of {options.repeats}")

    ours = best_of(options.repeats, lambda: run_workqueue(burst, workers=options.workers, trickle=False))
    bare = best_of(options.repeats, lambda: run_asyncio_queue(burst, workers=options.workers, trickle=False))
    print(f"\nburst: {len(burst)} adds ({options.duplicates} per key, shuffled)")
    print(
        f"  WorkQueue      {ours.seconds * 1000:8.1f} ms  {ours.reconciles:6d} reconciles  "
        f"{len(burst) / ours.seconds:10,.0f} adds/s  {ours.reconciles / ours.seconds:10,.0f} reconciles/s"
    )
    print(
        f"  asyncio.Queue  {bare.seconds * 1000:8.1f} ms  {bare.reconciles:6d} reconciles  "
        f"{len(burst) / bare.seconds:10,.0f} adds/s  {bare.reconciles / bare.seconds:10,.0f} reconciles/s"
    )
    print(f"  ratio (time to drain the burst, asyncio.Queue / WorkQueue): {bare.seconds / ours.seconds:.2f}x")
    print(
        f"  ratio (cost per reconcile, WorkQueue / asyncio.Queue): "
        f"{(ours.seconds / ours.reconciles) / (bare.seconds / bare.reconciles):.2f}x"
    )

    ours = best_of(options.repeats, lambda: run_workqueue(keys, workers=options.workers, trickle=True))
    bare = best_of(options.repeats, lambda: run_asyncio_queue(keys, workers=options.workers, trickle=True))
    print(f"\ntrickle: {len(keys)} keys added one per loop iteration; latency add -> reconcile start")
    for name, run in (("WorkQueue", ours), ("asyncio.Queue", bare)):
        print(
            f"  {name:<14} p50 {run.percentile(0.5) * 1e6:8.1f} us  p99 {run.percentile(0.99) * 1e6:8.1f} us  "
            f"mean {statistics.fmean(run.latencies) * 1e6:8.1f} us"
        )
    print(
        f"  ratio p50 (WorkQueue / asyncio.Queue): {ours.percentile(0.5) / bare.percentile(0.5):.2f}x, "
        f"p99: {ours.percentile(0.99) / bare.percentile(0.99):.2f}x"
    )

    per_cycle = min(raw_cycles(options.keys) for _ in range(options.repeats))
    print(f"\nraw: add + get + done on an idle queue: {per_cycle * 1e6:.2f} us per key ({1 / per_cycle:,.0f} keys/s)")


if __name__ == "__main__":
    main()
