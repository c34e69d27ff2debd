"""The scheduler for service and batch jobs: count, names, lost nodes, distinct_hosts, fit, ports, drains, updates."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_sim_scheduler_support import Cluster, distinct_hosts, make_job, make_node, three_pis

from nomad_operator.sim.scheduler import SchedulingInputError, compute_plan


def test_places_count_allocations_with_nomad_names() -> None:
    cluster = Cluster(three_pis())
    plan = cluster.run(make_job(count=3))
    assert sorted(p.name for p in plan.placements) == ["web.web[0]", "web.web[1]", "web.web[2]"]
    assert all(p.previous_alloc_id is None for p in plan.placements)
    assert plan.queued_allocations == {"web": 0}
    assert plan.annotations["web"]["Place"] == 3
    assert plan.failed_tg_allocs == {}
    # Without distinct_hosts, Nomad's job anti-affinity still spreads three allocations over three idle nodes.
    assert len({p.node_id for p in plan.placements}) == 3


def test_a_second_evaluation_changes_nothing() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3)
    cluster.run(job)
    plan = cluster.plan(job)
    assert plan.placements == []
    assert plan.stops == []
    assert plan.in_place_updates == []
    assert plan.annotations["web"]["Ignore"] == 3


def test_count_up_reuses_the_free_index() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3)
    cluster.run(job)
    middle = next(a for a in cluster.allocs if a.name == "web.web[1]")
    cluster.update(middle.id, desired_status="stop", client_status="complete")
    plan = cluster.plan(make_job(count=4))
    assert sorted(p.name for p in plan.placements) == ["web.web[1]", "web.web[3]"]


def test_count_down_stops_the_highest_indexes() -> None:
    cluster = Cluster(three_pis())
    cluster.run(make_job(count=3))
    plan = cluster.plan(make_job(count=1))
    stopped = {a.name for a in cluster.allocs if a.id in {s.alloc_id for s in plan.stops}}
    assert stopped == {"web.web[1]", "web.web[2]"}
    assert {s.description for s in plan.stops} == {"alloc not needed due to job update"}
    assert plan.annotations["web"]["Stop"] == 2
    assert plan.placements == []


def test_distinct_hosts_node_down_then_back() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3, constraints=[distinct_hosts()])
    first = cluster.run(job)
    assert len({p.node_id for p in first.placements}) == 3

    cluster.set_node("pi3", status="down")
    lost = next(a for a in cluster.live() if a.node_id == "node-pi3")
    plan = cluster.run(job)
    assert [(s.alloc_id, s.client_status, s.description) for s in plan.stops] == [
        (lost.id, "lost", "alloc is lost since its node is down")
    ]
    assert plan.placements == []
    assert plan.queued_allocations == {"web": 1}
    metric = plan.failed_tg_allocs["web"]
    assert metric["ConstraintFiltered"] == {"distinct_hosts": 2}
    assert metric["NodesEvaluated"] == 2
    assert metric["NodesFiltered"] == 2
    assert metric["NodesExhausted"] == 0
    assert metric["NodesAvailable"] == {"dc1": 2}
    assert metric["NodesInPool"] == 2
    assert metric["DimensionExhausted"] is None
    assert metric["CoalescedFailures"] == 0
    assert len(cluster.live("web")) == 2

    cluster.set_node("pi3", status="ready")
    back = cluster.run(job)
    assert [(p.name, p.node_id) for p in back.placements] == [(lost.name, "node-pi3")]
    assert back.queued_allocations == {"web": 0}
    assert back.failed_tg_allocs == {}
    assert len(cluster.live("web")) == 3


def test_without_distinct_hosts_all_three_fit_on_two_nodes() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3)
    cluster.run(job)
    cluster.set_node("pi2", status="down")
    lost = next(a for a in cluster.live() if a.node_id == "node-pi2")
    plan = cluster.run(job)
    assert [p.previous_alloc_id for p in plan.placements] == [lost.id]
    assert plan.placements[0].name == lost.name
    per_node = Counter(cluster.node_of(a).name for a in cluster.live())
    assert set(per_node) == {"pi1", "pi3"}
    assert sorted(per_node.values()) == [1, 2]
    assert plan.queued_allocations == {"web": 0}


def test_node_missing_from_the_cluster_counts_as_down() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3)
    cluster.run(job)
    cluster.nodes = cluster.nodes[:2]
    plan = cluster.plan(job)
    assert [s.client_status for s in plan.stops] == ["lost"]
    assert len(plan.placements) == 1


def test_disconnect_replace_false_keeps_the_allocation_on_a_down_node() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3, extra_group={"Disconnect": {"Replace": False, "LostAfter": 0}})
    cluster.run(job)
    cluster.set_node("pi1", status="down")
    plan = cluster.plan(job)
    assert plan.stops == []
    assert plan.placements == []
    assert plan.annotations["web"]["Ignore"] == 3


def test_disconnected_node_gets_one_replacement_and_no_stop() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3, constraints=[distinct_hosts()])
    cluster.run(job)
    cluster.nodes.append(make_node("pi4"))
    cluster.set_node("pi1", status="disconnected")
    unknown = next(a for a in cluster.live() if a.node_id == "node-pi1")
    plan = cluster.run(job)
    assert plan.stops == []
    assert [(p.name, p.node_id, p.previous_alloc_id) for p in plan.placements] == [
        (unknown.name, "node-pi4", unknown.id)
    ]
    assert cluster.plan(job).placements == []  # the name is held by the replacement now


def test_drain_migrates_allocations_off_the_node() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=3)
    cluster.run(job)
    cluster.set_node("pi1", draining=True, eligible=False)
    leaving = [a for a in cluster.live() if a.node_id == "node-pi1"]
    for alloc in leaving:
        cluster.update(alloc.id, migrate=True)
    plan = cluster.run(job)
    assert {s.alloc_id for s in plan.stops} == {a.id for a in leaving}
    assert {s.description for s in plan.stops} == {"alloc is being migrated"}
    assert {s.client_status for s in plan.stops} == {None}
    assert {p.previous_alloc_id for p in plan.placements} == {a.id for a in leaving}
    assert all(p.node_id != "node-pi1" for p in plan.placements)
    assert plan.annotations["web"]["Migrate"] == len(leaving)


def test_draining_node_receives_nothing_new() -> None:
    cluster = Cluster(three_pis())
    cluster.set_node("pi2", draining=True, eligible=False)
    plan = cluster.run(make_job(count=4))
    assert "node-pi2" not in {p.node_id for p in plan.placements}
    assert len(plan.placements) == 4


def test_stopped_job_stops_every_live_allocation() -> None:
    cluster = Cluster(three_pis())
    cluster.run(make_job(count=3))
    cluster.set_node("pi3", status="down")
    plan = cluster.plan(make_job(count=3, stop=True))
    by_status = Counter((s.description, s.client_status) for s in plan.stops)
    assert by_status == Counter(
        {("alloc not needed due to job update", None): 2, ("alloc is lost since its node is down", "lost"): 1}
    )
    assert plan.placements == []
    assert plan.annotations["web"]["Stop"] == 3


def test_group_removed_from_the_job_is_stopped() -> None:
    cluster = Cluster(three_pis())
    cluster.run(make_job(count=2, group="old"))
    plan = cluster.plan(make_job(count=1, group="new"))
    assert len(plan.stops) == 2
    assert [p.task_group for p in plan.placements] == ["new"]
    assert plan.annotations["old"]["Stop"] == 2
    assert set(plan.queued_allocations) == {"new"}


def test_cpu_exhaustion_reports_the_dimension_and_coalesces() -> None:
    cluster = Cluster(three_pis(cpu_mhz=1000))
    plan = cluster.run(make_job(count=5, cpu=600))
    assert len(plan.placements) == 3
    assert plan.queued_allocations == {"web": 2}
    metric = plan.failed_tg_allocs["web"]
    assert metric["DimensionExhausted"] == {"cpu": 3}
    assert metric["NodesExhausted"] == 3
    assert metric["NodesFiltered"] == 0
    assert metric["CoalescedFailures"] == 1
    assert metric["ResourcesExhausted"]["server"]["CPU"] == 1200  # added once per failed placement, like Nomad
    assert metric["ResourcesExhausted"]["server"]["MemoryMB"] == 0


def test_memory_exhaustion_counts_other_jobs() -> None:
    cluster = Cluster(three_pis(memory_mb=1024))
    cluster.run(make_job("db", count=3, memory=900))
    plan = cluster.run(make_job("web", count=1, memory=200))
    assert plan.placements == []
    assert plan.failed_tg_allocs["web"]["DimensionExhausted"] == {"memory": 3}


def test_node_class_counts_in_class_maps() -> None:
    cluster = Cluster([make_node("pi1", node_class="pi", cpu_mhz=50)])
    plan = cluster.run(make_job(count=1))
    assert plan.failed_tg_allocs["web"]["ClassExhausted"] == {"pi": 1}
    plan = Cluster([make_node("pi1", node_class="pi", arch="arm64")]).run(
        make_job(count=1, constraints=[{"LTarget": "${attr.cpu.arch}", "RTarget": "amd64", "Operand": "="}])
    )
    metric = plan.failed_tg_allocs["web"]
    assert metric["ClassFiltered"] == {"pi": 1}
    assert metric["ConstraintFiltered"] == {"${attr.cpu.arch} = amd64": 1}


def test_static_port_collision_blocks_a_second_allocation_per_node() -> None:
    cluster = Cluster(three_pis())
    plan = cluster.run(make_job(count=4, reserved_ports={"http": 9999}))
    assert len(plan.placements) == 3
    assert len({p.node_id for p in plan.placements}) == 3
    assert all(port.value == 9999 and port.label == "http" for p in plan.placements for port in p.ports)
    assert plan.failed_tg_allocs["web"]["DimensionExhausted"] == {"network: reserved port collision http=9999": 3}


def test_static_port_held_by_another_job_collides() -> None:
    cluster = Cluster([make_node("pi1")])
    cluster.run(make_job("fabio", count=1, reserved_ports={"lb": 9999}))
    plan = cluster.run(make_job("web", count=1, reserved_ports={"http": 9999}))
    assert plan.placements == []
    assert plan.failed_tg_allocs["web"]["DimensionExhausted"] == {"network: reserved port collision http=9999": 1}


def test_port_freed_by_a_stop_in_the_same_plan_can_be_reused() -> None:
    cluster = Cluster([make_node("pi1", memory_mb=1000)])
    job = make_job(count=1, memory=800, reserved_ports={"http": 8080})
    cluster.run(job)
    alloc = cluster.live()[0]
    cluster.update(alloc.id, migrate=True)  # `nomad alloc stop`: replace it, anywhere, even on its own node
    plan = cluster.plan(job)
    assert [(p.node_id, p.previous_alloc_id) for p in plan.placements] == [("node-pi1", alloc.id)]
    assert [port.value for port in plan.placements[0].ports] == [8080]


def test_dynamic_ports_never_collide_on_a_node() -> None:
    cluster = Cluster([make_node("pi1", cpu_mhz=100_000, memory_mb=100_000)])
    cluster.run(make_job("a", count=30, cpu=10, memory=10, dynamic_ports=("http", "admin")))
    cluster.run(make_job("b", count=30, cpu=10, memory=10, dynamic_ports=("http",)))
    ports = [port.value for alloc in cluster.live() for port in alloc.ports]
    assert len(ports) == 90
    assert len(set(ports)) == 90
    assert all(20000 <= port <= 31999 for port in ports)


def test_datacenter_glob_and_missing_driver() -> None:
    nodes = [
        make_node("a", datacenter="dc-east"),
        make_node("b", datacenter="edge"),
        make_node("c", drivers=frozenset()),
    ]
    cluster = Cluster(nodes)
    plan = cluster.run(make_job(count=3, datacenters=("dc*",), constraints=[distinct_hosts()]))
    assert {p.node_id for p in plan.placements} == {"node-a"}
    metric = plan.failed_tg_allocs["web"]
    assert metric["NodesAvailable"] == {"dc-east": 1, "dc1": 1}
    assert metric["ConstraintFiltered"] == {"missing drivers": 1, "distinct_hosts": 1}


def test_arch_constraint_picks_matching_nodes() -> None:
    nodes = [make_node("pi1"), make_node("pi2"), make_node("nuc", arch="amd64")]
    arch = {"LTarget": "${attr.cpu.arch}", "RTarget": "arm64", "Operand": "="}
    plan = Cluster(nodes).run(make_job(count=4, job_constraints=[arch]))
    assert {p.node_id for p in plan.placements} == {"node-pi1", "node-pi2"}


def test_distinct_property_limits_allocations_per_value() -> None:
    nodes = [make_node(f"n{i}", meta={"rack": "r1" if i < 2 else "r2"}) for i in range(4)]
    rack = {"LTarget": "${meta.rack}", "RTarget": "", "Operand": "distinct_property"}
    plan = Cluster(nodes).run(make_job(count=3, constraints=[rack]))
    racks = Counter(next(n for n in nodes if n.id == p.node_id).meta["rack"] for p in plan.placements)
    assert racks == Counter({"r1": 1, "r2": 1})
    assert plan.failed_tg_allocs["web"]["ConstraintFiltered"] == {
        "distinct_property: ${meta.rack}=r1 used by 1 allocs": 2,
        "distinct_property: ${meta.rack}=r2 used by 1 allocs": 2,
    }


def test_affinity_prefers_but_does_not_require() -> None:
    nodes = [make_node("pi1"), make_node("pi2"), make_node("nuc", arch="amd64")]
    affinity = {"LTarget": "${attr.cpu.arch}", "RTarget": "amd64", "Operand": "=", "Weight": 100}
    plan = Cluster(nodes).run(make_job(count=1, extra_group={"Affinities": [affinity]}))
    assert [p.node_id for p in plan.placements] == ["node-nuc"]
    unmatched = [make_node("pi1"), make_node("pi2")]
    assert len(Cluster(unmatched).run(make_job(count=1, extra_group={"Affinities": [affinity]})).placements) == 1


def test_spread_target_pulls_placements_towards_its_value() -> None:
    nodes = [make_node(f"e{i}", datacenter="east") for i in range(3)] + [make_node("w0", datacenter="west")]
    spread = {"Attribute": "${node.datacenter}", "Weight": 100, "SpreadTarget": [{"Value": "west", "Percent": 100}]}
    with_spread = Cluster(nodes).run(make_job(count=2, datacenters=("*",), extra_group={"Spreads": [spread]}))
    assert [p.node_id for p in with_spread.placements] == ["node-w0", "node-w0"]
    without = Cluster(nodes).run(make_job(count=2, datacenters=("*",)))
    assert len({p.node_id for p in without.placements}) == 2


def test_batch_completed_allocations_are_not_replaced() -> None:
    cluster = Cluster(three_pis())
    job = make_job("report", job_type="batch", count=2)
    cluster.run(job)
    done = cluster.allocs[0]
    cluster.update(done.id, client_status="complete")
    plan = cluster.plan(job)
    assert plan.placements == []
    assert plan.stops == []
    assert plan.annotations["web"]["Ignore"] == 2


def test_service_completed_allocation_is_placed_again() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=2)
    cluster.run(job)
    gone = cluster.allocs[0]
    cluster.update(gone.id, client_status="complete")
    plan = cluster.plan(job)
    assert [(p.name, p.previous_alloc_id) for p in plan.placements] == [(gone.name, None)]


def test_failed_allocation_is_replaced_only_when_flagged_for_rescheduling() -> None:
    cluster = Cluster(three_pis())
    job = make_job(count=1)
    cluster.run(job)
    failed = cluster.allocs[0]
    cluster.update(failed.id, client_status="failed")
    assert cluster.plan(job).placements == []  # its reschedule delay has not passed yet
    cluster.update(failed.id, migrate=True)
    plan = cluster.plan(job)
    assert [(s.alloc_id, s.description) for s in plan.stops] == [(failed.id, "alloc was rescheduled because it failed")]
    assert [p.previous_alloc_id for p in plan.placements] == [failed.id]
    assert plan.annotations["web"]["RescheduleNow"] == 1


def test_new_version_with_a_new_image_is_a_destructive_update() -> None:
    cluster = Cluster(three_pis())
    v0 = make_job(count=2)
    cluster.run(v0)
    old = {a.id: a for a in cluster.live()}
    v1 = make_job(count=2, image="traefik/whoami:v1.11")
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    assert {s.alloc_id for s in plan.stops} == set(old)
    assert {s.description for s in plan.stops} == {"alloc is being updated due to job update"}
    assert {(p.name, p.previous_alloc_id) for p in plan.placements} == {(a.name, a.id) for a in old.values()}
    assert plan.annotations["web"]["DestructiveUpdate"] == 2
    assert plan.in_place_updates == []


def test_new_version_changing_only_count_updates_in_place() -> None:
    cluster = Cluster(three_pis())
    v0 = make_job(count=2)
    cluster.run(v0)
    v1 = make_job(count=3)
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    assert sorted(plan.in_place_updates) == sorted(a.id for a in cluster.live())
    assert plan.stops == []
    assert [p.name for p in plan.placements] == ["web.web[2]"]
    assert plan.annotations["web"]["InPlaceUpdate"] == 2


def test_unknown_old_version_is_replaced() -> None:
    cluster = Cluster(three_pis())
    cluster.run(make_job(count=1))
    plan = cluster.plan(make_job(count=1), version=1)
    assert plan.annotations["web"]["DestructiveUpdate"] == 1
    assert len(plan.placements) == 1


def test_failed_destructive_update_keeps_the_old_allocation() -> None:
    cluster = Cluster([make_node("pi1", memory_mb=1000)])
    v0 = make_job(count=1, memory=500)
    cluster.run(v0)
    v1 = make_job(count=1, memory=2000)
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    assert plan.stops == []
    assert plan.placements == []
    assert plan.queued_allocations == {"web": 1}
    assert plan.failed_tg_allocs["web"]["DimensionExhausted"] == {"memory": 1}


def test_destructive_update_frees_the_old_resources_first() -> None:
    cluster = Cluster([make_node("pi1", memory_mb=1000)])
    v0 = make_job(count=1, memory=600, reserved_ports={"http": 80})
    cluster.run(v0)
    v1 = make_job(count=1, memory=700, reserved_ports={"http": 80})
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    assert [p.node_id for p in plan.placements] == ["node-pi1"]
    assert len(plan.stops) == 1


def test_same_seed_same_plan_whatever_the_node_order() -> None:
    nodes = [make_node(f"n{i:02d}") for i in range(20)]
    job = make_job(count=10, dynamic_ports=("http",))

    def placements(seed: int, *, reverse: bool = False) -> list[tuple[str, str, tuple[int, ...]]]:
        listed = list(reversed(nodes)) if reverse else nodes
        plan = compute_plan(job, job_version=0, nodes=listed, job_allocs=[], other_allocs=[], rng=random.Random(seed))
        return [(p.name, p.node_id, tuple(port.value for port in p.ports)) for p in plan.placements]

    assert placements(42) == placements(42)
    assert placements(42) == placements(42, reverse=True)
    assert len({tuple(placements(seed)) for seed in range(5)}) > 1  # the seed does break the ties


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda job: job.pop("ID"), "the job has no ID"),
        (lambda job: job.update(Type="daemon"), "unknown Type 'daemon'"),
        (lambda job: job["TaskGroups"][0].update(Count=-1), "Count must be at least 0"),
        (lambda job: job["TaskGroups"][0].update(Count="3"), "Count must be an integer"),
        (lambda job: job["TaskGroups"][0].update(Name=""), "every task group needs a Name"),
        (lambda job: job["TaskGroups"].append(dict(job["TaskGroups"][0])), "is defined twice"),
        (lambda job: job["TaskGroups"][0]["Tasks"][0].update(Driver=None), "needs a Driver"),
        (lambda job: job["TaskGroups"][0].update(Tasks=[]), "has no tasks"),
        (lambda job: job["TaskGroups"][0].update(Tasks="server"), "Tasks must be a list"),
        (lambda job: job.update(Datacenters="dc1"), "Datacenters must be a list of strings"),
        (
            lambda job: job["TaskGroups"][0].update(Networks=[{"ReservedPorts": [{"Label": "x", "Value": 70000}]}]),
            "port 70000 is above 65535",
        ),
        (lambda job: job["TaskGroups"][0]["Tasks"][0].update(Resources={"CPU": -5}), "CPU must be at least 0"),
    ],
)
def test_bad_job_is_refused_with_a_clear_error(change: object, message: str) -> None:
    job = make_job(count=1)
    change(job)  # type: ignore[operator]
    with pytest.raises(SchedulingInputError, match=message.replace("[", r"\[")):
        Cluster(three_pis()).plan(job)
