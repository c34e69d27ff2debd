"""Properties of the work queue over random operation sequences: one key never twice at once, no add ever lost."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import ManualClock

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])


class QueueModel(RuleBasedStateMachine):
    """Drives the queue with random add / add_after / get / done / clock steps and checks it against a small model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.queue = WorkQueue[str](name="model", clock=self.clock)
        self.processing: set[str] = set()
        self.owed: set[str] = set()  # added since last handed out: must be handed out (again)
        self.delayed: dict[str, float] = {}  # due time of pending delayed adds

    @rule(key=KEYS)
    def add(self, key: str) -> None:
        self.queue.add(key)
        self.owed.add(key)
        self.delayed.pop(key, None)

    @rule(key=KEYS, delay=st.floats(min_value=0.001, max_value=5.0))
    def add_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)
        if key not in self.owed:
            due = self.clock.now() + delay
            self.delayed[key] = min(due, self.delayed.get(key, due))

    @rule(seconds=st.floats(min_value=0.0, max_value=3.0))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for key, due in list(self.delayed.items()):
            if due <= self.clock.now():
                del self.delayed[key]
                self.owed.add(key)

    @precondition(lambda self: len(self.queue) > 0)
    @rule()
    def get(self) -> None:
        key = self.queue.get_nowait()
        assert key not in self.processing, f"{key} handed out while already processing"
        assert key in self.owed, f"{key} handed out without being added"
        self.owed.discard(key)
        self.processing.add(key)

    @precondition(lambda self: bool(self.processing))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.processing)))
        self.queue.done(key)
        self.processing.discard(key)

    @invariant()
    def matches_the_model(self) -> None:
        assert self.queue.processing_count == len(self.processing)
        assert len(self.queue) == len(self.owed - self.processing)
        assert self.queue.delayed_count == len(self.delayed)
        for key in ["a", "b", "c", "d", "e"]:
            assert self.queue.is_waiting(key) == (key in self.owed or key in self.delayed), key


TestQueueModel = QueueModel.TestCase
TestQueueModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


async def _run_workers(adds: list[tuple[str, int]], workers: int) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Adds keys (yielding to the loop in between) while `workers` tasks process them; returns what overlapped and the
    sequence numbers of each key's last add and last reconcile start."""
    queue = WorkQueue[str](name="property")
    sequence = 0
    last_add: dict[str, int] = {}
    last_start: dict[str, int] = {}
    running: set[str] = set()
    overlaps: list[str] = []

    async def worker() -> None:
        nonlocal sequence
        while True:
            try:
                key = await queue.get()
            except Exception:
                return
            if key in running:
                overlaps.append(key)
            running.add(key)
            sequence += 1
            last_start[key] = sequence
            for _ in range(len(key) + sequence % 3):
                await asyncio.sleep(0)
            running.discard(key)
            queue.done(key)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    for key, pause in adds:
        sequence += 1
        last_add[key] = sequence
        queue.add(key)
        for _ in range(pause):
            await asyncio.sleep(0)
    queue.shutdown(drain=True)
    await asyncio.gather(*tasks)
    return overlaps, last_add, last_start


@settings(max_examples=60, deadline=None)
@given(
    adds=st.lists(st.tuples(st.sampled_from(["a", "bb", "ccc", "d"]), st.integers(0, 3)), min_size=1, max_size=60),
    workers=st.integers(1, 4),
)
def test_concurrent_workers_never_overlap_on_a_key_and_see_every_last_change(
    adds: list[tuple[str, int]], workers: int
) -> None:
    overlaps, last_add, last_start = asyncio.run(_run_workers(adds, workers))
    assert overlaps == []
    for key, added in last_add.items():
        assert last_start.get(key, 0) > added, f"{key} was not reconciled after its last add"
