"""The informer's paged lists against the simulator: whole lists read in small pages, and changes made while paging.

A paged list is no snapshot: page 2 is read after page 1, at a later raft index. What matters is that nothing made
between pages is lost, so the stream has to start after the FIRST page's index; the changes that no later page holds
then arrive by the stream. The changes are made from inside the informer's own listener while it applies page 1, so
they fall between page 1 and page 2 every time, with no timing involved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rt_running_informer import RunningInformer, noop_reconcile

from nomad_operator.nomad import NomadClient
from nomad_operator.runtime import ALLOCATIONS_BY_JOB, Controller, ObjectKey, Watch, job_of_allocation
from nomad_operator.runtime.informer import Informer, cache_for_controllers
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import eventually, wait_for_allocs
from nomad_operator.testing.simulated_cluster import client_for

pytest_plugins = ["nomad_operator.testing.fixtures"]

PAGE_SIZE = 2


def job(job_id: str, *, count: int = 1, meta: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": meta or {"v": "1"},
        "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 20, "MemoryMB": 16}}]}],
    }  # fmt: skip


WATCHES = [
    Watch("Job", fields=("Meta", "Status", "JobModifyIndex")),  # Meta is not in a stub: changed jobs are read in full
    Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "ClientStatus", "DesiredStatus")),
    Watch("Node", fields=("Status", "Name")),
]


class Recorder:
    """A ChangeListener that counts announcements, and can act once on the first Job announced by the first list."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.on_first_job_page: Any = None

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None:
        self.seen[(kind, str(obj.get("ID")))] += 1
        if kind == "Job" and self.on_first_job_page is not None:
            action, self.on_first_job_page = self.on_first_job_page, None
            action()


def make_informer(client: NomadClient, **options: Any) -> tuple[Informer, Recorder]:
    controller = Controller("probe", reconcile=noop_reconcile, watches=WATCHES)
    recorder = Recorder()
    informer = Informer(
        client=client, cache=cache_for_controllers([controller]), listener=recorder, list_page_size=PAGE_SIZE,
        relist_period=None, **options,
    )  # fmt: skip
    return informer, recorder


async def fresh(client: NomadClient, informer: Informer, kind: str) -> dict[ObjectKey, Any]:
    """What the cache should hold for `kind`: a one-request list (jobs read in full), projected like the cache."""
    projection = informer.cache.projection(kind)
    if kind == "Job":
        stubs = (await client.list_jobs(namespace="*")).value
        objects = [(await client.read_job(stub["ID"], namespace=stub["Namespace"])).value for stub in stubs]
    elif kind == "Allocation":
        objects = (await client.list_allocations(namespace="*")).value
    else:
        objects = (await client.list_nodes()).value
    return {ObjectKey(kind, obj.get("Namespace", ""), obj["ID"]): projection.apply(obj) for obj in objects}


async def cache_equals_fresh_lists(client: NomadClient, informer: Informer) -> bool:
    for kind in ("Job", "Allocation", "Node"):
        cached = {key: informer.cache.get(key) for key in informer.cache.keys(kind)}
        if cached != await fresh(client, informer, kind):
            return False
    return True


async def test_lists_of_many_pages_fill_the_cache_like_one_list(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    for number in range(5):
        await nomad_client.register_job(job(f"job-{number}", count=2))
        await wait_for_allocs(nomad_client, f"job-{number}", count=2)
    await nomad_sim.cluster.wait_idle()
    before = Counter(nomad_sim.cluster.stats.by_route)
    async with client_for(nomad_sim) as client:
        informer, recorder = make_informer(client)
        async with RunningInformer(informer):
            await eventually(lambda: informer.synced, what="the first list")
            requests = Counter(nomad_sim.cluster.stats.by_route) - before
            # 10 allocations at 2 a page are 5 pages (a 6th only if the last page came back full), 3 nodes are 2.
            assert requests["GET /v1/allocations"] >= 5
            assert requests["GET /v1/nodes"] >= 2
            assert informer.cache.sizes() == {"Job": 5, "Allocation": 10, "Node": 3}
            assert await cache_equals_fresh_lists(client, informer)
            job_key = ObjectKey("Job", "default", "job-3")
            assert len(informer.cache.by_index(ALLOCATIONS_BY_JOB.name, job_key)) == 2
            assert recorder.seen[("Job", "job-3")] == 1  # announced once, when its page arrived
            assert informer.listed_at("Allocation") > 0


async def test_changes_made_between_pages_arrive_through_the_stream(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    for job_id in ("m1", "m2", "m3", "m4", "m5", "m6"):
        await nomad_client.register_job(job(job_id))
    await nomad_sim.cluster.wait_idle()
    cluster = nomad_sim.cluster
    written: list[int] = []

    def change_the_cluster_between_pages() -> None:
        # Runs while the informer applies Job page 1 (m1, m2) and before it asks for page 2 (from m3 on).
        written.append(cluster.jobs.register({"Job": job("a0")}, path_id=None, namespace="default")["Index"])
        written.append(cluster.jobs.deregister("default", "m1", purge=True)["Index"])
        written.append(
            cluster.jobs.register({"Job": job("m2", meta={"v": "2"})}, path_id=None, namespace="default")["Index"]
        )
        written.append(cluster.jobs.deregister("default", "m5", purge=True)["Index"])

    async with client_for(nomad_sim) as client:
        informer, recorder = make_informer(client)
        recorder.on_first_job_page = change_the_cluster_between_pages
        async with RunningInformer(informer):
            await eventually(lambda: informer.synced, what="the first list")
            assert len(written) == 4, "the changes were made while the jobs were being paged"
            # The stream follows from the first page's index, which is below every change made after page 1.
            assert informer.listed_at("Job") < min(written)

            def key(job_id: str) -> ObjectKey:
                return ObjectKey("Job", "default", job_id)

            def followed() -> bool:
                m2 = informer.cache.get(key("m2"))
                return (
                    informer.cache.get(key("a0")) is not None  # sorts before page 2: on no page, only in the stream
                    and informer.cache.get(key("m1")) is None  # on page 1, purged after it
                    and m2 is not None
                    and m2["Meta"] == {"v": "2"}  # on page 1 at its old version
                    and informer.cache.get(key("m5")) is None  # purged before its page was read
                )

            await eventually(followed, what="the changes made between pages to reach the cache")
            assert sorted(informer.cache.keys("Job"), key=str) == [
                key(job_id) for job_id in ("a0", "m2", "m3", "m4", "m6")
            ]
            await eventually(lambda: cache_equals_fresh_lists(client, informer), what="the cache equal to a list")


async def test_a_paged_relist_after_a_reset_removes_and_adds_what_the_stream_missed(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    for job_id in ("keep-1", "keep-2", "old"):
        await nomad_client.register_job(job(job_id))
    async with client_for(nomad_sim) as client:
        informer, recorder = make_informer(client)
        async with RunningInformer(informer):
            await eventually(lambda: informer.synced, what="the first list")
            relists = informer.relists
            nomad_sim.cluster.inject_fault({"path": "^/v1/event/stream", "status": 500})
            nomad_sim.cluster.cut_streams()
            await nomad_client.deregister_job("old", purge=True)
            await nomad_client.register_job(job("new", count=2))
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
            assert recorder.seen[("Job", "old")] >= 2  # appeared, then vanished in the re-list's diff
            await eventually(lambda: cache_equals_fresh_lists(client, informer), what="the cache equal to a list")
