"""Per-node usage kept incrementally, and the scheduler fed from it deciding exactly as when it scans allocations."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from test_sim_scheduler_support import Cluster, make_job, three_pis

from nomad_operator.sim.node_usage import AllocLoad, NodeUsageTracker, alloc_load
from nomad_operator.sim.placement import is_live
from nomad_operator.sim.scheduler import AllocInfo, Plan, compute_plan


def test_a_second_write_replaces_the_contribution() -> None:
    tracker = NodeUsageTracker()
    tracker.set_live("a", AllocLoad(node_id="n1", cpu_mhz=100, memory_mb=64, ports=(20001,)))
    tracker.set_live("a", AllocLoad(node_id="n1", cpu_mhz=300, memory_mb=128, ports=(20002,)))
    usage = tracker.usage["n1"]
    assert (usage.cpu_mhz, usage.memory_mb, usage.ports) == (300, 128, {20002})
    assert len(tracker) == 1


def test_a_moved_allocation_leaves_its_old_node() -> None:
    tracker = NodeUsageTracker()
    tracker.set_live("a", AllocLoad(node_id="n1", cpu_mhz=100, memory_mb=64, ports=()))
    tracker.set_live("a", AllocLoad(node_id="n2", cpu_mhz=100, memory_mb=64, ports=()))
    assert (tracker.usage["n1"].cpu_mhz, tracker.usage["n2"].cpu_mhz) == (0, 100)


def test_a_port_stays_taken_while_any_live_allocation_holds_it() -> None:
    tracker = NodeUsageTracker()
    tracker.set_live("a", AllocLoad(node_id="n1", cpu_mhz=10, memory_mb=10, ports=(8080, 9090)))
    tracker.set_live("b", AllocLoad(node_id="n1", cpu_mhz=10, memory_mb=10, ports=(8080,)))
    tracker.set_gone("a")
    assert tracker.usage["n1"].ports == {8080}
    tracker.set_gone("b")
    tracker.set_gone("b")  # twice, or for an allocation never counted: nothing happens
    tracker.set_gone("never-seen")
    usage = tracker.usage["n1"]
    assert (usage.cpu_mhz, usage.memory_mb, usage.ports, len(tracker)) == (0, 0, set(), 0)


def test_load_is_read_from_the_wire_form() -> None:
    alloc = {
        "NodeID": "n1",
        "AllocatedResources": {
            "Tasks": {"a": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 64}},
                      "b": {"Cpu": {"CpuShares": 50}, "Memory": {"MemoryMB": 32}}},
            "Shared": {"Ports": [{"Label": "http", "Value": 25000}, {"Label": "admin", "Value": 25001}]},
        },
    }  # fmt: skip
    assert alloc_load(alloc) == AllocLoad(node_id="n1", cpu_mhz=150, memory_mb=96, ports=(25000, 25001))
    assert alloc_load({"NodeID": "n2"}) == AllocLoad(node_id="n2", cpu_mhz=0, memory_mb=0, ports=())


def _totals(allocs: Iterable[AllocInfo]) -> NodeUsageTracker:
    tracker = NodeUsageTracker()
    for alloc in allocs:
        if is_live(alloc):
            ports = tuple(port.value for port in alloc.ports)
            tracker.set_live(alloc.id, AllocLoad(alloc.node_id, alloc.cpu_mhz, alloc.memory_mb, ports))
    return tracker


def _both_ways(cluster: Cluster, job: dict[str, object]) -> tuple[Plan, Plan]:
    mine = [alloc for alloc in cluster.allocs if alloc.job_id == job["ID"]]
    others = [alloc for alloc in cluster.allocs if alloc.job_id != job["ID"]]
    scanned = compute_plan(
        job, job_version=0, nodes=cluster.nodes, job_allocs=mine, other_allocs=others, rng=random.Random(3)
    )
    totals = _totals(cluster.allocs).usage
    fed = compute_plan(
        job, job_version=0, nodes=cluster.nodes, job_allocs=mine, node_usage=totals, rng=random.Random(3)
    )
    return scanned, fed


def test_plans_from_totals_equal_plans_from_a_scan_on_a_crowded_cluster() -> None:
    """Ports, CPU and memory nearly full: any difference in what is counted would change a decision."""
    cluster = Cluster(nodes=three_pis(cpu_mhz=1000, memory_mb=1024))
    cluster.run(make_job("static", count=2, reserved_ports={"http": 8080}, cpu=300, memory=300))
    cluster.run(make_job("dynamic", count=3, dynamic_ports=["http", "admin"], cpu=200, memory=200))
    growing = make_job("growing", count=2, dynamic_ports=["http"], cpu=150, memory=150)
    cluster.run(growing)

    for job in (
        make_job("growing", count=5, dynamic_ports=["http"], cpu=150, memory=150),  # the job's own allocs counted once
        make_job("newcomer", count=4, reserved_ports={"http": 8080}, cpu=100, memory=100),  # port collisions
        make_job("too-big", count=2, cpu=900, memory=100),  # CPU exhausted: same failure metrics
        make_job("static", count=1, reserved_ports={"http": 8080}, cpu=300, memory=300),  # a stop frees resources
    ):
        scanned, fed = _both_ways(cluster, job)
        assert fed == scanned, job["ID"]
    assert _both_ways(cluster, make_job("too-big", count=2, cpu=900, memory=100))[0].failed_tg_allocs


def test_totals_and_allocations_together_are_refused() -> None:
    cluster = Cluster(nodes=three_pis())
    cluster.run(make_job("a", count=1))
    with pytest.raises(ValueError, match="either other_allocs or node_usage"):
        compute_plan(
            make_job("b"),
            job_version=0,
            nodes=cluster.nodes,
            job_allocs=[],
            other_allocs=cluster.allocs,
            node_usage=_totals(cluster.allocs).usage,
            rng=random.Random(1),
        )
