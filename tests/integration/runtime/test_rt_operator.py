"""The Operator against the simulator: reconciling after the last change, leadership terms, write guard, shutdown."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from nomad_operator.nomad import NomadClient, NotLeader
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch, job_of_allocation
from nomad_operator.runtime.operator import Operator, OperatorSettings
from nomad_operator.testing import eventually, wait_for_allocs

if TYPE_CHECKING:
    from nomad_operator.testing.fixtures import OperatorFactory

pytest_plugins = ["nomad_operator.testing.fixtures"]


def job(job_id: str, *, count: int = 1, meta: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": meta or {},
        "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 50, "MemoryMB": 32}}]}],
    }  # fmt: skip


class Recorder:
    """A reconciler that records, per key, the ModifyIndex it saw in the cache, and counts its calls."""

    def __init__(self) -> None:
        self.operator: Operator | None = None
        self.seen: dict[ObjectKey, int | None] = {}
        self.calls: Counter[ObjectKey] = Counter()
        self.events: list[str] = []

    async def __call__(self, key: ObjectKey) -> Result:
        assert self.operator is not None
        obj = self.operator.cache.get(key)
        self.seen[key] = None if obj is None else obj["ModifyIndex"]
        self.calls[key] += 1
        return Result()

    def controller(self, name: str = "recorder", **options: Any) -> Controller:
        watches = [
            Watch("Job", fields=("Meta", "Status")),
            Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "ClientStatus")),
        ]
        return Controller(name, reconcile=self, watches=watches, **options)


class SwitchableLeader:
    """Leadership that the test hands over and takes back; refuses writes while standing by."""

    def __init__(self, *, leading: bool, log: list[str] | None = None) -> None:
        self._leading_event = asyncio.Event()
        self._standby_event = asyncio.Event()
        self.log = log if log is not None else []
        self.set(leading)

    @property
    def is_leader(self) -> bool:
        return self._leading_event.is_set()

    def set(self, leading: bool) -> None:
        (self._leading_event.set if leading else self._leading_event.clear)()
        (self._standby_event.clear if leading else self._standby_event.set)()

    def check_write(self, method: str, path: str) -> None:
        if not self.is_leader:
            raise NotLeader(f"standby refuses {method} {path}")

    async def wait_for_leadership(self) -> None:
        await self._leading_event.wait()

    async def wait_for_standby(self) -> None:
        await self._standby_event.wait()

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.set(False)
            self.log.append("released")


async def all_reconciled_after_last_change(client: NomadClient, recorder: Recorder) -> bool:
    jobs = (await client.list_jobs(namespace="*")).value
    for stub in jobs:
        key = ObjectKey("Job", stub["Namespace"], stub["ID"])
        assert recorder.seen.get(key) == stub["ModifyIndex"], f"{key} last reconciled at {recorder.seen.get(key)}"
    return True


async def test_every_job_is_reconciled_after_its_last_change(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    await nomad_client.register_job(job("early"))
    recorder = Recorder()
    recorder.operator = await operator_factory([recorder.controller()])
    for name in ("a", "b", "c"):
        await nomad_client.register_job(job(name, count=2))
    await nomad_client.register_job(job("a", count=2, meta={"changed": "yes"}))
    await wait_for_allocs(nomad_client, "a", count=2)
    await eventually(lambda: all_reconciled_after_last_change(nomad_client, recorder), what="reconciles caught up")
    assert recorder.seen[ObjectKey("Job", "default", "early")] is not None  # listed before start, still reconciled


async def test_a_standby_keeps_its_cache_warm_but_neither_reconciles_nor_writes(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    recorder = Recorder()
    leader = SwitchableLeader(leading=False)
    operator = recorder.operator = await operator_factory([recorder.controller()], leader=leader)
    await nomad_client.register_job(job("while-standby"))
    key = ObjectKey("Job", "default", "while-standby")
    await eventually(lambda: operator.cache.get(key), what="the standby's cache to see the job")
    assert not operator.reconciling
    assert recorder.calls[key] == 0
    with pytest.raises(NotLeader):
        await operator.client.register_job(job("refused"))

    leader.set(True)  # takeover: every key is enqueued, including what changed while standing by
    await eventually(lambda: recorder.calls[key] >= 1, what="the new leader to reconcile the job")
    await operator.client.register_job(job("allowed"))  # the write guard lets the leader write

    leader.set(False)
    await eventually(lambda: not operator.reconciling, what="reconciling to stop with leadership")
    calls = sum(recorder.calls.values())
    await nomad_client.register_job(job("after-loss"))
    await eventually(lambda: operator.cache.get(ObjectKey("Job", "default", "after-loss")), what="cache still warm")
    assert sum(recorder.calls.values()) == calls


async def test_shutdown_lets_in_flight_reconciles_finish_before_the_lock_is_released(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def slow(key: ObjectKey) -> Result:
        started.set()
        await asyncio.sleep(0.3)
        log.append(f"finished {key.name}")
        return Result()

    leader = SwitchableLeader(leading=True, log=log)
    controller = Controller("slow", reconcile=slow, watches=[Watch("Job", fields=("Status",))])
    operator = await operator_factory([controller], leader=leader)
    await nomad_client.register_job(job("busy"))
    await eventually(started.is_set, what="a reconcile to start")
    await operator.stop()
    assert log == ["finished busy", "released"]


async def test_shutdown_cancels_a_reconcile_that_outlives_the_timeout(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    outcome: list[str] = []
    started = asyncio.Event()

    async def stuck(key: ObjectKey) -> Result:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return Result()

    controller = Controller("stuck", reconcile=stuck, watches=[Watch("Job", fields=("Status",))])
    operator = await operator_factory([controller], settings=OperatorSettings(shutdown_timeout=0.1))
    await nomad_client.register_job(job("hung"))
    await eventually(started.is_set, what="a reconcile to start")
    await operator.stop()
    assert outcome == ["cancelled"]


async def test_resync_reconciles_unchanged_keys_again(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    await nomad_client.register_job(job("quiet"))
    recorder = Recorder()
    recorder.operator = await operator_factory([recorder.controller(resync_period=0.05)])
    key = ObjectKey("Job", "default", "quiet")
    await eventually(lambda: recorder.calls[key] >= 3, what="repeated reconciles of an unchanged job")


def test_bad_declarations_are_refused_with_a_clear_error() -> None:
    recorder = Recorder()
    client = NomadClient()
    with pytest.raises(ValueError, match="at least one controller"):
        Operator(client=client, controllers=[])
    with pytest.raises(ValueError, match="unique"):
        Operator(client=client, controllers=[recorder.controller("twin"), recorder.controller("twin")])
    with pytest.raises(ValueError, match="no informer follows"):
        Operator(client=client, controllers=[Controller("x", reconcile=recorder, watches=[Watch("GitSource")])])
