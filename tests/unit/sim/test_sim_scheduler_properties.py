"""Properties that hold for any cluster and any sequence of evaluations, node losses and recoveries."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sim_scheduler_support import Cluster, distinct_hosts, make_job, make_node

JOB_IDS = ("consul", "fabio", "whoami")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Cluster, list[dict[str, object]], list[tuple[str, str]]]:
    node_count = draw(st.integers(min_value=1, max_value=5))
    nodes = [
        make_node(
            f"n{i}",
            cpu_mhz=draw(st.sampled_from([300, 1000, 4000])),
            memory_mb=draw(st.sampled_from([256, 1024, 8192])),
        )
        for i in range(node_count)
    ]
    jobs = []
    for job_id in draw(st.lists(st.sampled_from(JOB_IDS), min_size=1, max_size=3, unique=True)):
        port = draw(st.sampled_from([None, 8500, 9999]))
        jobs.append(
            make_job(
                job_id,
                count=draw(st.integers(min_value=0, max_value=6)),
                cpu=draw(st.sampled_from([100, 250, 500])),
                memory=draw(st.sampled_from([64, 128, 512])),
                constraints=[distinct_hosts()] if draw(st.booleans()) else [],
                reserved_ports={"p": port} if port else None,
                dynamic_ports=("http",) if draw(st.booleans()) else (),
            )
        )
    events = draw(
        st.lists(
            st.tuples(st.sampled_from(["down", "ready", "drain", "eval"]), st.sampled_from([n.name for n in nodes])),
            max_size=6,
        )
    )
    return Cluster(nodes, seed=draw(st.integers(0, 1000))), jobs, events


def check_invariants(cluster: Cluster, jobs: list[dict[str, object]]) -> None:
    live = cluster.live()
    ports = Counter((alloc.node_id, port.value) for alloc in live for port in alloc.ports)
    assert all(n == 1 for n in ports.values()), f"a host port is held twice: {ports}"
    for job in jobs:
        group = job["TaskGroups"][0]  # type: ignore[index]
        mine = [alloc for alloc in live if alloc.job_id == job["ID"]]
        assert len(mine) <= group["Count"]
        assert len({alloc.name for alloc in mine}) == len(mine), "two live allocations share a name"
        if group["Constraints"]:
            assert len({alloc.node_id for alloc in mine}) == len(mine), "distinct_hosts broken"
    for node in cluster.nodes:
        on_node = [alloc for alloc in live if alloc.node_id == node.id]
        assert sum(alloc.cpu_mhz for alloc in on_node) <= node.cpu_mhz
        assert sum(alloc.memory_mb for alloc in on_node) <= node.memory_mb


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_through_node_losses(
    scenario: tuple[Cluster, list[dict[str, object]], list[tuple[str, str]]],
) -> None:
    cluster, jobs, events = scenario
    for job in jobs:
        cluster.run(job)
        check_invariants(cluster, jobs)
    for event, node_name in events:
        if event == "down":
            cluster.set_node(node_name, status="down")
        elif event == "ready":
            cluster.set_node(node_name, status="ready", draining=False, eligible=True)
        elif event == "drain":
            cluster.set_node(node_name, draining=True, eligible=False)
            for alloc in cluster.live():
                if cluster.node_of(alloc).name == node_name:
                    cluster.update(alloc.id, migrate=True)
        for job in jobs:
            plan = cluster.run(job)
            assert all(queued >= 0 for queued in plan.queued_allocations.values())
            assert bool(plan.failed_tg_allocs) == any(plan.queued_allocations.values())
            check_invariants(cluster, jobs)


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_a_converged_cluster_plans_nothing(
    scenario: tuple[Cluster, list[dict[str, object]], list[tuple[str, str]]],
) -> None:
    cluster, jobs, _ = scenario
    for job in jobs:
        cluster.run(job)
    for job in jobs:
        plan = cluster.plan(job)
        assert plan.stops == []
        assert plan.in_place_updates == []
        assert plan.placements == []
        # What could not be placed is still queued, and accounts exactly for the missing allocations.
        live = len([a for a in cluster.live() if a.job_id == job["ID"]])
        group = job["TaskGroups"][0]  # type: ignore[index]
        assert live + plan.queued_allocations[group["Name"]] == group["Count"]
