"""FetchTrigger: bursts coalesce, requests during a fetch give exactly one more fetch, the poll timeout fires."""

from __future__ import annotations

import asyncio
import random

import pytest

from nomad_operator.controllers.gitops.trigger import POLL_REASON, FetchTrigger, jittered_interval


async def test_burst_before_wait_is_one_wakeup() -> None:
    trigger = FetchTrigger(name="s", min_interval=0)
    for n in range(1000):
        trigger.request(reason="webhook" if n % 2 else "requestedAt")

    reasons = await trigger.wait()

    assert reasons == {"webhook", "requestedAt"}
    assert not trigger.pending
    assert (trigger.stats.requests, trigger.stats.wakeups) == (1000, 1)


async def test_requests_during_a_fetch_cause_exactly_one_more() -> None:
    trigger = FetchTrigger(name="s", min_interval=0)
    fetching, release, idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
    fetches = 0

    async def loop() -> None:
        nonlocal fetches
        while True:
            idle.set()
            await trigger.wait()
            idle.clear()
            fetches += 1
            fetching.set()
            await release.wait()
            release.clear()

    task = asyncio.create_task(loop())
    try:
        trigger.request()
        await fetching.wait()
        fetching.clear()
        for _ in range(50):  # arrive while the first fetch runs
            trigger.request()
        release.set()
        await fetching.wait()  # the one follow-up fetch
        release.set()
        await idle.wait()  # the loop is back in wait() with nothing pending
        assert fetches == 2
        assert not trigger.pending
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_poll_after_returns_the_interval_reason() -> None:
    trigger = FetchTrigger(name="s", min_interval=0)
    assert await trigger.wait(poll_after=0.001) == {POLL_REASON}
    assert trigger.stats.polls == 1
    trigger.request(reason="webhook")
    assert await trigger.wait(poll_after=60) == {"webhook"}


async def test_reasons_are_bounded() -> None:
    trigger = FetchTrigger(name="s", min_interval=0)
    for n in range(1000):
        trigger.request(reason=f"r{n}")
    assert len(await trigger.wait()) <= 16


async def test_wakeups_are_kept_min_interval_apart() -> None:
    now = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    trigger = FetchTrigger(name="s", min_interval=0.5, clock=lambda: now[0], sleep=fake_sleep)
    trigger.request()
    await trigger.wait()  # the first wake-up is immediate
    assert slept == []

    now[0] += 0.2  # a fetch took 0.2 s; a burst arrived meanwhile
    for _ in range(100):
        trigger.request()
    assert await trigger.wait() == {"requested"}
    assert slept == [pytest.approx(0.3)]  # held back to 0.5 s after the previous wake-up

    now[0] += 2.0  # long after: no hold-back
    trigger.request()
    await trigger.wait()
    assert len(slept) == 1
    assert trigger.stats.wakeups == 3


def test_min_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        FetchTrigger(name="s", min_interval=-1)


def test_jittered_interval_stays_in_its_band() -> None:
    rng = random.Random(7)
    values = [jittered_interval(60, jitter=0.1, rng=rng) for _ in range(500)]
    assert all(54 <= v <= 66 for v in values)
    assert len({round(v, 3) for v in values}) > 100  # actually spread, not a constant
    assert jittered_interval(60, jitter=0) == 60
    with pytest.raises(ValueError, match="jitter"):
        jittered_interval(60, jitter=1.5)
