"""The informer against the simulator over real HTTP: list then watch, deletions, re-list after a reset, readiness."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from rt_running_informer import RunningInformer, noop_reconcile

from nomad_operator.nomad import NomadClient
from nomad_operator.runtime import ALLOCATIONS_BY_JOB, Controller, ObjectKey, Watch, job_of_allocation
from nomad_operator.runtime.informer import Informer, cache_for_controllers
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import eventually, wait_for_allocs
from nomad_operator.testing.simulated_cluster import client_for, fast_sim_config

pytest_plugins = ["nomad_operator.testing.fixtures"]


def job(job_id: str, *, count: int = 2, meta: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": meta or {},
        "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 50, "MemoryMB": 32}}]}],
    }  # fmt: skip


WATCHES = [
    Watch("Job", fields=("Meta", "Status", "Stop", "JobModifyIndex")),
    Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "ClientStatus", "DesiredStatus")),
    Watch("Node", fields=("Status", "Name")),
]


class Changes:
    """A ChangeListener that counts what the informer announced, by kind and ID."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None:
        self.seen[(kind, str(obj.get("ID")))] += 1


def make_informer(client: NomadClient, **options: Any) -> tuple[Informer, Changes]:
    controller = Controller("probe", reconcile=noop_reconcile, watches=WATCHES)
    changes = Changes()
    informer = Informer(client=client, cache=cache_for_controllers([controller]), listener=changes, **options)
    return informer, changes


async def projected_fresh_list(client: NomadClient, informer: Informer, kind: str) -> dict[ObjectKey, Any]:
    """What the cache should hold for `kind`: every object read in full, projected like the cache projects."""
    projection = informer.cache.projection(kind)
    if kind == "Job":
        stubs = (await client.list_jobs(namespace="*")).value
        objects = [(await client.read_job(stub["ID"], namespace=stub["Namespace"])).value for stub in stubs]
    else:
        objects = (await client.list_allocations(namespace="*")).value
    return {ObjectKey(kind, obj["Namespace"], obj["ID"]): projection.apply(obj) for obj in objects}


def cached(informer: Informer, kind: str) -> dict[ObjectKey, Any]:
    return {key: informer.cache.get(key) for key in informer.cache.keys(kind)}


async def cache_matches_fresh_list(client: NomadClient, informer: Informer, kind: str) -> bool:
    fresh = await projected_fresh_list(client, informer, kind)
    assert cached(informer, kind) == fresh, f"{kind} cache differs from a fresh list"
    return True


async def test_list_then_watch_fills_the_cache_with_full_objects_and_only_declared_fields(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    await nomad_client.register_job(job("before", meta={"team": "a"}))
    async with client_for(nomad_sim) as client:
        informer, changes = make_informer(client)
        async with RunningInformer(informer):
            await eventually(lambda: informer.synced, what="first list")
            listed = informer.cache.get(ObjectKey("Job", "default", "before"))
            assert listed is not None
            assert listed["Meta"] == {"team": "a"}  # not in the list stub: read in full
            assert "TaskGroups" not in listed  # not declared: projected away
            assert len(informer.cache.keys("Node")) == 3

            await nomad_client.register_job(job("after", meta={"team": "b"}))
            await wait_for_allocs(nomad_client, "after", count=2)
            after_key = ObjectKey("Job", "default", "after")
            await eventually(
                lambda: len(informer.cache.by_index(ALLOCATIONS_BY_JOB.name, after_key)) == 2,
                what="allocations of 'after' in the cache",
            )
            after = informer.cache.get(ObjectKey("Job", "default", "after"))
            assert after is not None
            assert after["Meta"] == {"team": "b"}
            assert changes.seen[("Job", "after")] >= 1
            await eventually(lambda: cache_matches_fresh_list(client, informer, "Job"), what="cache equal to a list")


async def test_purge_removes_the_job_from_the_cache(nomad_sim: RunningSimulator, nomad_client: NomadClient) -> None:
    async with client_for(nomad_sim) as client:
        informer, changes = make_informer(client)
        async with RunningInformer(informer):
            await nomad_client.register_job(job("doomed"))
            key = ObjectKey("Job", "default", "doomed")
            await eventually(lambda: informer.cache.get(key) is not None, what="doomed cached")
            announced = changes.seen[("Job", "doomed")]
            await nomad_client.deregister_job("doomed", purge=True)
            await eventually(lambda: informer.cache.get(key) is None, what="doomed removed from the cache")
            assert changes.seen[("Job", "doomed")] > announced  # the deletion was announced too


@pytest.fixture
def nomad_sim_config() -> SimConfig:
    # A tiny event buffer: batches made while the stream is down fall out of it, as they do from Nomad's 100.
    return fast_sim_config(event_buffer_size=2)


async def test_a_reset_relists_and_the_diff_removes_and_adds_what_the_stream_missed(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    metrics = RuntimeMetrics()
    async with client_for(nomad_sim) as client:
        informer, changes = make_informer(client, metrics=metrics)
        async with RunningInformer(informer):
            await nomad_client.register_job(job("old"))
            await eventually(lambda: informer.cache.get(ObjectKey("Job", "default", "old")), what="old cached")
            relists = informer.relists
            nomad_sim.cluster.inject_fault({"path": "^/v1/event/stream", "status": 500})
            nomad_sim.cluster.cut_streams()
            await nomad_client.deregister_job("old", purge=True)
            await nomad_client.register_job(job("new"))
            await wait_for_allocs(nomad_client, "new", count=2)
            nomad_sim.cluster.clear_faults()
            await eventually(lambda: informer.relists > relists, what="a re-list after the reset")
            await eventually(
                lambda: (
                    informer.cache.get(ObjectKey("Job", "default", "new")) is not None
                    and informer.cache.get(ObjectKey("Job", "default", "old")) is None
                ),
                what="the cache to follow the missed purge and register",
            )
            assert changes.seen[("Job", "old")] >= 2  # appeared, then vanished in the re-list's diff
            await eventually(
                lambda: cache_matches_fresh_list(client, informer, "Allocation"), what="allocations equal to a list"
            )
    assert b"nomad_operator_event_stream_reconnects_total" in metrics.render()


async def test_not_ready_with_a_reason_until_nomad_answers_the_list(nomad_sim: RunningSimulator) -> None:
    nomad_sim.cluster.inject_fault({"path": "^/v1/jobs$", "status": 500})
    async with client_for(nomad_sim) as client:
        informer, _ = make_informer(client)
        async with RunningInformer(informer):
            reason = await eventually(
                lambda: "500" in (informer.not_ready_reason() or "") and informer.not_ready_reason(),
                what="a readiness reason naming the failed list",
            )
            assert "Job" in reason
            assert not informer.synced
            nomad_sim.cluster.clear_faults()
            await eventually(lambda: informer.synced, what="sync once the list succeeds")
            assert informer.not_ready_reason() is None
