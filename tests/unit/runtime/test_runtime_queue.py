"""The work queue: collapse, one-at-a-time per key, delays on a manual clock, limits, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from nomad_operator.runtime.errors import QueueEmpty, QueueFull, QueueMisuse, QueueShutDown
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import ManualClock, default_rate_limiter


def make_queue(*, max_keys: int = 1000, clock: ManualClock | None = None) -> tuple[WorkQueue[str], ManualClock]:
    clock = clock or ManualClock()
    return WorkQueue[str](name="test", max_keys=max_keys, clock=clock), clock


def drain_ready(queue: WorkQueue[str]) -> list[str]:
    keys = []
    while len(queue):
        keys.append(queue.get_nowait())
    return keys


class RecordingObserver:
    def __init__(self) -> None:
        self.adds = 0
        self.retries = 0
        self.depths: list[int] = []
        self.lags: list[float | None] = []

    def added(self) -> None:
        self.adds += 1

    def retried(self) -> None:
        self.retries += 1

    def depth_changed(self, depth: int) -> None:
        self.depths.append(depth)

    def handed_out(self, lag: float | None) -> None:
        self.lags.append(lag)


def test_duplicates_collapse() -> None:
    queue, _ = make_queue()
    for key in ["a", "b", "a", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert drain_ready(queue) == ["a", "b", "c"]


def test_readd_during_processing_is_handed_out_after_done() -> None:
    queue, _ = make_queue()
    queue.add("a")
    assert queue.get_nowait() == "a"
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0, "a key being processed must not be handed out again"
    assert queue.is_waiting("a")
    with pytest.raises(QueueEmpty):
        queue.get_nowait()
    queue.done("a")
    assert queue.get_nowait() == "a"
    queue.done("a")
    assert not queue.is_waiting("a")
    assert len(queue) == 0


def test_done_without_get_is_refused_clearly() -> None:
    queue, _ = make_queue()
    queue.add("a")
    with pytest.raises(QueueMisuse, match=r"done\('a'\) for a key that is not being processed"):
        queue.done("a")
    assert queue.get_nowait() == "a", "the refused done() must not lose the waiting key"


async def test_get_waits_for_an_add() -> None:
    queue, _ = make_queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.add("x")
    assert await asyncio.wait_for(getter, timeout=5) == "x"
    assert queue.is_processing("x")


async def test_a_cancelled_getter_passes_its_wakeup_on() -> None:
    queue, _ = make_queue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("x")  # wakes `first`
    first.cancel()
    assert await asyncio.wait_for(second, timeout=5) == "x"
    with pytest.raises(asyncio.CancelledError):
        await first


def test_add_after_waits_for_the_clock() -> None:
    queue, clock = make_queue()
    queue.add_after("a", 10.0)
    assert len(queue) == 0
    assert queue.delayed_count == 1
    clock.advance(9.999)
    assert len(queue) == 0
    clock.advance(0.001)
    assert len(queue) == 1
    assert queue.delayed_count == 0
    assert queue.get_nowait() == "a"


def test_earlier_delay_wins_and_immediate_add_supersedes() -> None:
    queue, clock = make_queue()
    queue.add_after("a", 10.0)
    queue.add_after("a", 3.0)
    queue.add_after("a", 7.0)
    clock.advance(3.0)
    assert drain_ready(queue) == ["a"]
    queue.done("a")
    clock.advance(10.0)
    assert len(queue) == 0, "the superseded later times must not hand the key out again"

    queue.add_after("b", 5.0)
    queue.add("b")
    assert drain_ready(queue) == ["b"]
    queue.done("b")
    clock.advance(5.0)
    assert len(queue) == 0, "an immediate add replaces the pending delayed one"


def test_add_after_for_a_waiting_key_does_nothing() -> None:
    queue, clock = make_queue()
    queue.add("a")
    queue.add_after("a", 1.0)
    assert queue.delayed_count == 0
    assert drain_ready(queue) == ["a"]
    queue.done("a")
    clock.advance(2.0)
    assert len(queue) == 0


def test_delayed_add_of_a_processing_key_waits_for_done() -> None:
    queue, clock = make_queue()
    queue.add("a")
    assert queue.get_nowait() == "a"
    queue.add_after("a", 1.0)
    clock.advance(1.0)
    assert len(queue) == 0, "due, but still processing"
    queue.done("a")
    assert drain_ready(queue) == ["a"]


def test_rate_limited_adds_back_off_exponentially_up_to_the_cap() -> None:
    clock = ManualClock()
    limiter = default_rate_limiter(clock=clock, base=0.005, maximum=1.0, qps=float("inf"))
    queue = WorkQueue[str](name="test", clock=clock, rate_limiter=limiter)
    expected = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    for delay in expected:
        queue.add_rate_limited("a")
        clock.advance(delay - 1e-6)
        assert len(queue) == 0, f"handed out before its {delay} s backoff"
        clock.advance(2e-6)
        assert queue.get_nowait() == "a"
        queue.done("a")
    assert queue.retries("a") == len(expected)
    queue.forget("a")
    assert queue.retries("a") == 0
    queue.add_rate_limited("a")
    clock.advance(0.005)
    assert queue.get_nowait() == "a", "after forget() the backoff starts from the base again"


def test_the_global_bucket_spreads_retries_of_many_keys() -> None:
    clock = ManualClock()
    limiter = default_rate_limiter(clock=clock, base=0.001, maximum=0.001, qps=10.0, burst=5)
    queue = WorkQueue[str](name="test", clock=clock, rate_limiter=limiter)
    for number in range(15):
        queue.add_rate_limited(f"k{number}")
    clock.advance(0.001)
    assert len(queue) == 5, "the burst goes out at once"
    clock.advance(0.5)
    assert len(queue) == 10, "then 10 per second"
    clock.advance(0.5)
    assert len(queue) == 15


def test_full_queue_refuses_new_keys_and_keeps_the_others() -> None:
    queue, _ = make_queue(max_keys=3)
    queue.add("a")
    queue.add("b")
    queue.add_after("c", 5.0)
    with pytest.raises(QueueFull, match=r"max_keys=3.*'d'"):
        queue.add("d")
    with pytest.raises(QueueFull):
        queue.add_after("e", 1.0)
    queue.add("a")  # already waiting: not a new key
    queue.add("c")  # moves from delayed to ready: not a new key
    assert drain_ready(queue) == ["a", "b", "c"]


def test_processing_keys_do_not_count_against_the_limit() -> None:
    queue, _ = make_queue(max_keys=1)
    queue.add("a")
    assert queue.get_nowait() == "a"
    queue.add("b")
    assert queue.get_nowait() == "b"


async def test_shutdown_drops_waiting_keys_and_wakes_getters() -> None:
    queue, _ = make_queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, timeout=5)

    queue2, _ = make_queue()
    queue2.add("a")
    queue2.add_after("b", 1.0)
    queue2.shutdown()
    assert len(queue2) == 0
    assert queue2.delayed_count == 0
    queue2.add("c")
    assert len(queue2) == 0, "adds after shutdown are ignored"
    with pytest.raises(QueueShutDown):
        await queue2.get()


async def test_shutdown_with_drain_hands_out_what_was_waiting() -> None:
    queue, _ = make_queue()
    queue.add("a")
    queue.add("b")
    assert await queue.get() == "a"
    queue.add("a")  # re-added while processing
    queue.shutdown(drain=True)
    assert await queue.get() == "b"
    queue.done("a")
    assert await queue.get() == "a"
    with pytest.raises(QueueShutDown):
        await queue.get()


def test_observer_sees_adds_depth_retries_and_lag() -> None:
    clock = ManualClock()
    observer = RecordingObserver()
    queue = WorkQueue[str](name="test", clock=clock, observer=observer)
    queue.add("a", since=clock.now() - 2.0)
    queue.add("a")
    queue.add("b")
    assert observer.adds == 2
    assert observer.depths[-1] == 2
    clock.advance(1.0)
    assert queue.get_nowait() == "a"
    assert observer.lags == [3.0], "lag counts from the earliest change behind the key"
    queue.add_rate_limited("c")
    assert observer.retries == 1
    clock.advance(1.0)
    queue.get_nowait()
    queue.get_nowait()
    assert observer.lags[-1] is None, "a delayed re-add is not an event"
    assert observer.depths[-1] == 0
