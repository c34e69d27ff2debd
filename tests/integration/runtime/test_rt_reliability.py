"""Reliability of list+watch under a storm: the event stream is cut 100 times at random points during a burst of
10,000 state changes. Afterwards the cache must equal a fresh list, every key must have been reconciled after its
last change, and no key was reconciled twice at the same version (replayed and duplicate events cost no work)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from nomad_operator.nomad import Backoff, NomadClient
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch
from nomad_operator.runtime.operator import Operator, OperatorSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config

if TYPE_CHECKING:
    from nomad_operator.testing.fixtures import OperatorFactory

pytest_plugins = ["nomad_operator.testing.fixtures"]

STATE_CHANGES = 10_000
STREAM_CUTS = 100
WRITERS = 6
JOBS = 150
SEED = 20261125
JOB_FIELDS = ("Meta", "Status", "Version")
ALLOC_FIELDS = ("JobID", "ClientStatus", "DesiredStatus")
QUICK_RECONNECT = Backoff(initial=0.002, maximum=0.02, jitter=0.002)


@pytest.fixture
def nomad_sim_config() -> SimConfig:
    # A small event buffer, so that batches written while the stream reconnects fall out of it (as from Nomad's 100
    # under a heavier load): only re-lists can recover those.
    return fast_sim_config(nodes=5, seed=SEED, event_buffer_size=8)


def job(job_id: str, *, generation: int) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"],
        "Meta": {"generation": str(generation)},
        "TaskGroups": [{"Name": "web", "Count": 1 + generation % 3, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 20, "MemoryMB": 16}}]}],
    }  # fmt: skip


class VersionRecorder:
    """Records, per key, the ModifyIndex each reconcile saw, and how often each (key, index) was reconciled."""

    def __init__(self) -> None:
        self.operator: Operator | None = None
        self.last_seen: dict[ObjectKey, int | None] = {}
        self.per_version: Counter[tuple[ObjectKey, int | None]] = Counter()

    async def __call__(self, key: ObjectKey) -> Result:
        assert self.operator is not None
        obj = self.operator.cache.get(key)
        version = None if obj is None else obj["ModifyIndex"]
        self.last_seen[key] = version
        self.per_version[(key, version)] += 1
        return Result()


class Storm:
    """Writers that make STATE_CHANGES raft writes, and a cutter that cuts the informer's live event stream when the
    burst passes each of STREAM_CUTS random points (writers wait for a cut that is due, so every cut lands mid-burst
    on a connected stream, not on one that is still reconnecting)."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.start = sim.cluster.store.index
        self.points = sorted(random.Random(SEED + 1).sample(range(1, STATE_CHANGES), STREAM_CUTS))
        self.cuts_done = 0
        self.streams_closed = 0

    @property
    def progress(self) -> int:
        return self.sim.cluster.store.index - self.start

    def cut_due(self) -> bool:
        return self.cuts_done < STREAM_CUTS and self.progress >= self.points[self.cuts_done]

    async def write(self, client: NomadClient) -> int:
        rng = random.Random(SEED)
        generations = Counter[str]()

        async def writer() -> None:
            while self.progress < STATE_CHANGES:
                if self.cut_due():
                    await eventually(lambda: not self.cut_due(), interval=0.001, what="the due stream cut")
                job_id = f"job-{rng.randrange(JOBS):03d}"
                generations[job_id] += 1
                await client.register_job(job(job_id, generation=generations[job_id]))

        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        return self.progress

    async def cut(self) -> None:
        broker = self.sim.cluster.broker
        for point in self.points:
            await eventually(
                lambda: self.progress >= point and broker.subscriber_count > 0,  # noqa: B023 - awaited here
                interval=0.001,
                timeout=30,
                what=f"cut point {point} with a connected stream",
            )
            self.streams_closed += self.sim.cluster.cut_streams()
            self.cuts_done += 1


async def matches_fresh_lists(client: NomadClient, operator: Operator, recorders: dict[str, VersionRecorder]) -> bool:
    await asyncio.sleep(0)
    stubs = (await client.list_jobs(namespace="*")).value
    jobs = [(await client.read_job(stub["ID"], namespace=stub["Namespace"])).value for stub in stubs]
    allocs = (await client.list_allocations(namespace="*")).value
    for kind, objects in (("Job", jobs), ("Allocation", allocs)):
        projection = operator.cache.projection(kind)
        fresh = {ObjectKey(kind, obj["Namespace"], obj["ID"]): projection.apply(obj) for obj in objects}
        cached = {key: operator.cache.get(key) for key in operator.cache.keys(kind)}
        assert cached.keys() == fresh.keys(), f"{kind}: cache keys differ from a fresh list"
        stale = [key for key in fresh if cached[key] != fresh[key]]
        assert not stale, f"{kind}: {len(stale)} cached objects differ from a fresh list, e.g. {stale[:3]}"
        last_seen = recorders[kind].last_seen
        late = [key for key, obj in fresh.items() if last_seen.get(key) != obj["ModifyIndex"]]
        assert not late, f"{kind}: {len(late)} keys not reconciled after their last change, e.g. {late[:3]}"
    return True


@pytest.mark.slow
async def test_stream_cut_100_times_during_10000_changes_loses_nothing_and_repeats_nothing(
    nomad_sim: RunningSimulator, nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    recorders = {"Job": VersionRecorder(), "Allocation": VersionRecorder()}
    controllers = [
        Controller("jobs", reconcile=recorders["Job"], watches=[Watch("Job", fields=JOB_FIELDS)], resync_period=None),
        Controller(
            "allocs", reconcile=recorders["Allocation"], watches=[Watch("Allocation", fields=ALLOC_FIELDS)],
            resync_period=None,
        ),
    ]  # fmt: skip
    settings = OperatorSettings(relist_period=None, stream_backoff=QUICK_RECONNECT)
    operator = await operator_factory(controllers, settings=settings)
    for recorder in recorders.values():
        recorder.operator = operator
    storm = Storm(nomad_sim)
    cutter = asyncio.create_task(storm.cut())
    changes = await storm.write(nomad_client)
    await cutter
    assert changes >= STATE_CHANGES
    assert storm.streams_closed == STREAM_CUTS  # every cut hit the informer's live stream
    await nomad_sim.cluster.wait_idle()

    await eventually(
        lambda: matches_fresh_lists(nomad_client, operator, recorders), timeout=30, what="cache and reconciles to agree"
    )
    assert operator.informer.relists > STREAM_CUTS  # every reset was answered with a re-list
    counts = [item for recorder in recorders.values() for item in recorder.per_version.items()]
    repeated = {pair: count for pair, count in counts if count > 1}
    assert not repeated, f"keys reconciled more than once at the same version: {list(repeated.items())[:5]}"
