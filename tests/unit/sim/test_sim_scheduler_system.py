"""The scheduler for system and sysbatch jobs: one allocation per eligible node, following nodes, never moving."""

from __future__ import annotations

from test_sim_scheduler_support import Cluster, make_job, make_node, three_pis


def system_job(**kwargs: object) -> dict[str, object]:
    return make_job("fabio", job_type="system", count=1, group="fabio", **kwargs)  # type: ignore[arg-type]


def test_one_allocation_per_ready_node_named_index_zero() -> None:
    cluster = Cluster([*three_pis(), make_node("off", eligible=False), make_node("dead", status="down")])
    plan = cluster.run(system_job())
    assert sorted(p.node_id for p in plan.placements) == ["node-pi1", "node-pi2", "node-pi3"]
    assert {p.name for p in plan.placements} == {"fabio.fabio[0]"}
    assert plan.annotations["fabio"]["Place"] == 3
    assert plan.queued_allocations == {"fabio": 0}
    assert cluster.plan(system_job()).placements == []


def test_node_down_marks_lost_and_does_not_move() -> None:
    cluster = Cluster(three_pis())
    job = system_job()
    cluster.run(job)
    cluster.set_node("pi2", status="down")
    plan = cluster.run(job)
    assert [(s.client_status, s.description) for s in plan.stops] == [("lost", "alloc is lost since its node is down")]
    assert plan.placements == []
    assert plan.queued_allocations == {"fabio": 0}
    assert plan.failed_tg_allocs == {}
    cluster.set_node("pi2", status="ready")
    assert [p.node_id for p in cluster.run(job).placements] == ["node-pi2"]


def test_new_node_gets_an_allocation() -> None:
    cluster = Cluster(three_pis())
    job = system_job()
    cluster.run(job)
    cluster.nodes.append(make_node("pi4"))
    assert [p.node_id for p in cluster.run(job).placements] == ["node-pi4"]


def test_constraints_choose_the_nodes_silently() -> None:
    nodes = [*three_pis(), make_node("nuc", arch="amd64")]
    arch = {"LTarget": "${attr.cpu.arch}", "RTarget": "amd64", "Operand": "="}
    plan = Cluster(nodes).run(system_job(constraints=[arch]))
    assert [p.node_id for p in plan.placements] == ["node-nuc"]
    assert plan.failed_tg_allocs == {}
    assert plan.queued_allocations == {"fabio": 0}


def test_exhausted_node_is_reported_and_queued() -> None:
    nodes = [make_node("big"), make_node("small1", memory_mb=100), make_node("small2", memory_mb=100)]
    plan = Cluster(nodes).run(system_job(memory=500))
    assert [p.node_id for p in plan.placements] == ["node-big"]
    assert plan.queued_allocations == {"fabio": 2}
    metric = plan.failed_tg_allocs["fabio"]
    assert metric["NodesEvaluated"] == 1
    assert metric["DimensionExhausted"] == {"memory": 1}
    assert metric["CoalescedFailures"] == 1


def test_job_update_that_excludes_a_node_stops_its_allocation() -> None:
    nodes = [*three_pis(), make_node("nuc", arch="amd64")]
    cluster = Cluster(nodes)
    v0 = system_job()
    cluster.run(v0)
    v1 = system_job(constraints=[{"LTarget": "${attr.cpu.arch}", "RTarget": "arm64", "Operand": "="}])
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    nuc_alloc = next(a for a in cluster.live() if a.node_id == "node-nuc")
    assert [(s.alloc_id, s.description) for s in plan.stops] == [(nuc_alloc.id, "alloc not needed due to job update")]
    # A constraint change alone is an in-place update where the node still satisfies it, as in Nomad.
    assert sorted(plan.in_place_updates) == sorted(a.id for a in cluster.live() if a.node_id != "node-nuc")
    assert plan.placements == []


def test_destructive_update_replaces_on_the_same_node() -> None:
    cluster = Cluster(three_pis())
    v0 = system_job()
    cluster.run(v0)
    before = {a.node_id: a.id for a in cluster.live()}
    v1 = system_job(image="fabiolb/fabio:1.6.4")
    plan = cluster.plan(v1, version=1, job_versions={0: v0})
    assert {(p.node_id, p.previous_alloc_id) for p in plan.placements} == set(before.items())
    assert plan.annotations["fabio"]["DestructiveUpdate"] == 3


def test_drained_system_allocation_is_stopped_not_moved() -> None:
    cluster = Cluster(three_pis())
    job = system_job()
    cluster.run(job)
    cluster.set_node("pi1", draining=True, eligible=False)
    alloc = next(a for a in cluster.live() if a.node_id == "node-pi1")
    assert cluster.plan(job).stops == []  # ineligible and draining, but not asked to migrate yet: it stays
    cluster.update(alloc.id, migrate=True)
    plan = cluster.plan(job)
    assert [s.alloc_id for s in plan.stops] == [alloc.id]
    assert plan.placements == []


def test_sysbatch_finished_allocations_are_not_run_again() -> None:
    cluster = Cluster(three_pis())
    job = make_job("backup", job_type="sysbatch", count=1)
    cluster.run(job)
    for alloc in cluster.allocs:
        cluster.update(alloc.id, client_status="complete")
    assert cluster.plan(job).placements == []
    cluster.nodes.append(make_node("pi4"))
    assert [p.node_id for p in cluster.plan(job).placements] == ["node-pi4"]
    assert len(cluster.plan(job, version=1).placements) == 4  # a new version runs everywhere again


def test_stopped_system_job_stops_everything() -> None:
    cluster = Cluster(three_pis())
    cluster.run(system_job())
    plan = cluster.plan(system_job(stop=True))
    assert len(plan.stops) == 3
    assert plan.placements == []
