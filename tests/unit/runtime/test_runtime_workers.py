"""The reconcile contract as the workers enforce it: results, retries, terminal errors, concurrency, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import ManualClock, default_rate_limiter
from nomad_operator.runtime.reconciler import ObjectKey, Result, TerminalError
from nomad_operator.runtime.workers import ReconcileWorkers

JOB = ObjectKey("Job", "default", "web")


async def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.001)


async def settle() -> None:
    """Let every runnable task take a few steps (to show that something does NOT happen)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def reconciled(self, *, duration: float, outcome: str) -> None:
        assert duration >= 0
        self.seen.append(outcome)


def make_queue(clock: ManualClock) -> WorkQueue[ObjectKey]:
    limiter = default_rate_limiter(clock=clock, qps=float("inf"))
    return WorkQueue[ObjectKey](name="test", clock=clock, rate_limiter=limiter)


async def test_success_forgets_the_backoff() -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    for _ in range(3):
        queue.rate_limiter.when(JOB)
    calls: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        calls.append(key)
        return Result()

    outcomes = Outcomes()
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, observer=outcomes)
    workers.start()
    queue.add(JOB)
    await eventually(lambda: outcomes.seen == ["success"])
    assert calls == [JOB]
    assert queue.retries(JOB) == 0
    assert not queue.is_waiting(JOB)
    assert queue.delayed_count == 0
    assert await workers.stop(grace=5)


async def test_requeue_after_looks_again_after_the_delay() -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    queue.rate_limiter.when(JOB)
    calls = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal calls
        calls += 1
        return Result(requeue_after=30.0) if calls == 1 else Result()

    outcomes = Outcomes()
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, observer=outcomes)
    workers.start()
    queue.add(JOB)
    await eventually(lambda: outcomes.seen == ["requeue"])
    assert queue.retries(JOB) == 0, "a requeue is not a failure"
    assert queue.delayed_count == 1
    clock.advance(29.9)
    await settle()
    assert calls == 1
    clock.advance(0.1)
    await eventually(lambda: outcomes.seen == ["requeue", "success"])
    assert calls == 2
    await workers.stop(grace=5)


async def test_an_exception_retries_with_growing_backoff_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    calls = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError("nomad is down")
        return Result()

    outcomes = Outcomes()
    workers = ReconcileWorkers(name="gitops", queue=queue, reconcile=reconcile, observer=outcomes)
    workers.start()
    caplog.set_level(logging.WARNING, logger="nomad_operator.runtime.workers")
    queue.add(JOB)
    for attempt, backoff in enumerate([0.005, 0.01, 0.02], start=1):
        await eventually(lambda attempt=attempt: len(outcomes.seen) == attempt)  # type: ignore[misc]
        assert queue.retries(JOB) == attempt
        clock.advance(backoff * 0.9)
        await settle()
        assert calls == attempt, f"retried before its {backoff} s backoff"
        clock.advance(backoff * 0.1 + 1e-9)
    await eventually(lambda: outcomes.seen == ["error", "error", "error", "success"])
    assert queue.retries(JOB) == 0
    failures = [record for record in caplog.records if "nomad is down" in record.getMessage()]
    assert len(failures) == 3
    assert {getattr(record, "controller", None) for record in failures} == {"gitops"}
    assert {getattr(record, "key", None) for record in failures} == {"Job/default/web"}
    assert failures[-1].exc_info is not None
    await workers.stop(grace=5)


async def test_a_terminal_error_is_not_retried_until_the_key_is_added_again(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    calls = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal calls
        calls += 1
        raise TerminalError("spec names a datacenter that does not exist", reason="InvalidSpec")

    outcomes = Outcomes()
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, observer=outcomes)
    workers.start()
    caplog.set_level(logging.ERROR, logger="nomad_operator.runtime.workers")
    queue.add(JOB)
    await eventually(lambda: outcomes.seen == ["terminal"])
    assert not queue.is_waiting(JOB)
    assert queue.delayed_count == 0
    assert queue.retries(JOB) == 0
    clock.advance(5000.0)
    await settle()
    assert calls == 1
    assert any("InvalidSpec" in record.getMessage() for record in caplog.records)
    queue.add(JOB)
    await eventually(lambda: calls == 2)
    await workers.stop(grace=5)


async def test_returning_something_other_than_a_result_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    queue = make_queue(clock)

    async def reconcile(key: ObjectKey) -> Result:
        return None  # type: ignore[return-value]

    outcomes = Outcomes()
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, observer=outcomes)
    workers.start()
    caplog.set_level(logging.WARNING, logger="nomad_operator.runtime.workers")
    queue.add(JOB)
    await eventually(lambda: outcomes.seen == ["error"])
    assert queue.retries(JOB) == 1
    assert queue.delayed_count == 1
    assert any("returned NoneType, not a Result" in record.getMessage() for record in caplog.records)
    await workers.stop(grace=5)


async def test_the_concurrency_limit_is_respected() -> None:
    queue = WorkQueue[ObjectKey](name="test")
    gate = asyncio.Event()
    running = 0
    most = 0
    finished: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        finished.append(key)
        return Result()

    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, concurrency=3)
    workers.start()
    keys = [ObjectKey("Job", "default", f"job-{number}") for number in range(10)]
    for key in keys:
        queue.add(key)
    await eventually(lambda: running == 3)
    await settle()
    assert running == 3
    assert len(workers.in_flight) == 3
    gate.set()
    await eventually(lambda: len(finished) == 10)
    assert most == 3
    assert sorted(finished) == sorted(keys)
    await workers.stop(grace=5)


def test_workers_refuse_a_concurrency_below_one() -> None:
    async def reconcile(key: ObjectKey) -> Result:
        return Result()

    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        ReconcileWorkers(name="test", queue=WorkQueue[ObjectKey](), reconcile=reconcile, concurrency=0)


async def test_stop_lets_in_flight_reconciles_finish_and_drops_waiting_keys() -> None:
    queue = WorkQueue[ObjectKey](name="test")
    release = asyncio.Event()
    started: list[ObjectKey] = []
    completed: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        started.append(key)
        await release.wait()
        completed.append(key)
        return Result()

    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, concurrency=1)
    workers.start()
    other = ObjectKey("Job", "default", "other")
    queue.add(JOB)
    queue.add(other)
    await eventually(lambda: started == [JOB])
    stopping = asyncio.create_task(workers.stop(grace=30))
    await eventually(lambda: queue.shutting_down)
    release.set()
    assert await stopping is True
    assert completed == [JOB]
    assert other not in started
    assert queue.processing_count == 0


async def test_stop_cancels_reconciles_that_outlive_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    queue = WorkQueue[ObjectKey](name="test")
    cancelled: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(key)
            raise
        return Result()

    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile)
    workers.start()
    queue.add(JOB)
    await eventually(lambda: JOB in workers.in_flight)
    caplog.set_level(logging.WARNING, logger="nomad_operator.runtime.workers")
    assert await workers.stop(grace=0.05) is False
    assert cancelled == [JOB]
    assert queue.processing_count == 0
    assert not workers.in_flight
    assert any("Job/default/web" in record.getMessage() for record in caplog.records)


async def test_stop_with_drain_reconciles_the_waiting_keys() -> None:
    queue = WorkQueue[ObjectKey](name="test")
    done: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        done.append(key)
        return Result()

    keys = [ObjectKey("Job", "default", f"j{number}") for number in range(5)]
    for key in keys:
        queue.add(key)
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, concurrency=2)
    workers.start()
    assert await workers.stop(grace=30, drain=True) is True
    assert sorted(done) == sorted(keys)


async def test_run_returns_once_the_queue_is_shut_down() -> None:
    queue = WorkQueue[ObjectKey](name="test")
    seen: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        seen.append(key)
        return Result()

    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, concurrency=2)
    running = asyncio.create_task(workers.run())
    queue.add(JOB)
    await eventually(lambda: seen == [JOB] and queue.processing_count == 0)
    queue.shutdown()
    await asyncio.wait_for(running, timeout=5)


async def test_a_burst_of_quick_reconciles_does_not_starve_other_tasks() -> None:
    queue = WorkQueue[ObjectKey](name="test")
    done: list[ObjectKey] = []
    seen_by_other_task: list[int] = []

    async def reconcile(key: ObjectKey) -> Result:
        done.append(key)  # reads only the cache: never awaits
        return Result()

    async def other_task() -> None:
        while len(done) < 500:
            seen_by_other_task.append(len(done))
            await asyncio.sleep(0)

    for number in range(500):
        queue.add(ObjectKey("Job", "default", f"j{number}"))
    workers = ReconcileWorkers(name="test", queue=queue, reconcile=reconcile, concurrency=2)
    watcher = asyncio.create_task(other_task())
    workers.start()
    await eventually(lambda: len(done) == 500)
    await watcher
    assert any(0 < count < 500 for count in seen_by_other_task), "the other task never ran during the burst"
    await workers.stop(grace=5)
