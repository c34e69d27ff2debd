"""The informer cache: projection, indexes, stale and replayed events, re-list diffs, limits."""

from __future__ import annotations

from typing import Any

import pytest

from nomad_operator.runtime.cache import (
    ALLOCATIONS_BY_JOB,
    ALLOCATIONS_BY_NODE,
    Cache,
    CachedKind,
    Projection,
)
from nomad_operator.runtime.errors import CacheFull, UncachedKind
from nomad_operator.runtime.reconciler import ALL_FIELDS, Controller, ObjectKey, Result, Watch, job_of_allocation

WEB = ObjectKey("Job", "default", "web")
NODE_1 = ObjectKey("Node", "", "n1")
NODE_2 = ObjectKey("Node", "", "n2")


def allocation(alloc_id: str, *, job: str = "web", node: str = "n1", index: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "ID": alloc_id,
        "Namespace": "default",
        "JobID": job,
        "NodeID": node,
        "ModifyIndex": index,
        "ClientStatus": "running",
        "Job": {"ID": job, "Meta": {"owner": "gitops"}, "TaskGroups": [{"Name": "web", "Count": 3}]},
        "TaskStates": {"web": {"State": "running", "Events": [{"Type": "Started"}]}},
        "DeploymentStatus": {"Healthy": True, "Timestamp": "2024-01-01T00:00:00Z"},
        "Resources": {"CPU": 100, "MemoryMB": 64},
        **extra,
    }


def job(job_id: str, *, index: int, status: str = "running") -> dict[str, Any]:
    return {"ID": job_id, "Namespace": "default", "ModifyIndex": index, "Status": status, "Meta": {"a": "b"}}


def allocation_cache(**limits: int) -> Cache:
    fields = ("JobID", "ClientStatus", "TaskStates", "Job.Meta", "DeploymentStatus.Healthy")
    return Cache(
        [CachedKind("Allocation", fields, (ALLOCATIONS_BY_JOB, ALLOCATIONS_BY_NODE)), CachedKind("Job")], **limits
    )


def test_projection_keeps_only_declared_paths_and_identity() -> None:
    cache = allocation_cache()
    assert cache.apply("Allocation", allocation("a1"), index=10)
    stored = cache.get(ObjectKey("Allocation", "default", "a1"))
    assert stored == {
        "ID": "a1",
        "Namespace": "default",
        "ModifyIndex": 10,
        "JobID": "web",
        "ClientStatus": "running",
        "TaskStates": {"web": {"State": "running", "Events": [{"Type": "Started"}]}},
        "Job": {"Meta": {"owner": "gitops"}},
        "DeploymentStatus": {"Healthy": True},
    }
    assert "NodeID" not in stored, "indexed fields are indexed from the full object, not kept"
    assert cache.by_index("allocations-by-node", NODE_1) == [stored]


def test_projection_walks_lists_and_tolerates_missing_or_null_values() -> None:
    projection = Projection(["TaskGroups.Name", "TaskGroups.Tasks.Driver", "Update.MaxParallel", "Missing.Field"])
    job_document = {
        "TaskGroups": [
            {"Name": "a", "Count": 1, "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "x"}}]},
            {"Name": "b", "Count": 2, "Tasks": None},
        ],
        "Update": None,
    }
    assert projection.apply(job_document) == {
        "TaskGroups": [{"Name": "a", "Tasks": [{"Driver": "docker"}]}, {"Name": "b", "Tasks": None}],
        "Update": None,
    }


def test_a_whole_field_wins_over_its_subpaths() -> None:
    projection = Projection(["Job.Meta", "Job", "Job.TaskGroups.Name"])
    document = {"Job": {"Meta": {"a": "1"}, "TaskGroups": [{"Name": "g", "Count": 1}], "Type": "service"}}
    assert projection.apply(document) == document


def test_all_fields_keeps_everything() -> None:
    cache = allocation_cache()
    cache.apply("Job", job("web", index=3) | {"TaskGroups": [{"Name": "g"}]}, index=3)
    assert cache.get(WEB) == job("web", index=3) | {"TaskGroups": [{"Name": "g"}]}


def test_for_controllers_takes_the_union_of_declared_fields() -> None:
    async def reconcile(key: ObjectKey) -> Result:
        return Result()

    gitops = Controller(
        "gitops",
        reconcile=reconcile,
        watches=[Watch("Job", fields=("Meta",)), Watch("Allocation", map_to=job_of_allocation, fields=("JobID",))],
    )
    nodes = Controller("nodes", reconcile=reconcile, watches=[Watch("Node"), Watch("Allocation", fields=("NodeID",))])
    cache = Cache.for_controllers([gitops, nodes])
    assert sorted(cache.kinds) == ["Allocation", "Job", "Node"]
    assert set(cache.projection("Allocation").paths) >= {"JobID", "NodeID", "ID", "Namespace", "ModifyIndex"}
    assert "TaskStates" not in cache.projection("Allocation").paths
    assert cache.projection("Node").keeps_everything
    assert ALL_FIELDS not in cache.projection("Job").paths
    cache.apply("Allocation", allocation("a1"), index=10)
    assert cache.by_index("allocations-by-job", WEB)[0]["JobID"] == "web"


def test_indexes_follow_updates_and_deletes() -> None:
    cache = allocation_cache()
    cache.apply("Allocation", allocation("a1", node="n1", index=10), index=10)
    cache.apply("Allocation", allocation("a2", node="n1", index=11), index=11)
    cache.apply("Allocation", allocation("a3", job="api", node="n2", index=12), index=12)
    assert sorted(alloc["ID"] for alloc in cache.by_index("allocations-by-node", NODE_1)) == ["a1", "a2"]
    assert [alloc["ID"] for alloc in cache.by_index("allocations-by-job", ObjectKey("Job", "default", "api"))] == ["a3"]

    cache.apply("Allocation", allocation("a2", node="n2", index=13), index=13)
    assert [alloc["ID"] for alloc in cache.by_index("allocations-by-node", NODE_1)] == ["a1"]
    assert sorted(alloc["ID"] for alloc in cache.by_index("allocations-by-node", NODE_2)) == ["a2", "a3"]

    cache.apply("Allocation", allocation("a1", index=14), index=14, deleted=True)
    assert cache.by_index("allocations-by-node", NODE_1) == []
    assert sorted(alloc["ID"] for alloc in cache.by_index("allocations-by-job", WEB)) == ["a2"]
    with pytest.raises(UncachedKind, match="no cache index named 'allocations-by-eval'"):
        cache.by_index("allocations-by-eval", "x")


def test_stale_and_duplicate_updates_are_ignored() -> None:
    cache = allocation_cache()
    assert cache.apply("Job", job("web", index=20, status="running"), index=20)
    assert not cache.apply("Job", job("web", index=20, status="running"), index=20), "a replayed event"
    assert not cache.apply("Job", job("web", index=15, status="pending"), index=15), "an older event"
    assert cache.get(WEB) is not None
    assert cache.get(WEB)["Status"] == "running"  # type: ignore[index]
    assert cache.apply("Job", job("web", index=21, status="dead"), index=21)
    assert cache.get(WEB)["Status"] == "dead"  # type: ignore[index]
    assert cache.last_index("Job") == 21


def test_deletions_are_not_undone_by_replayed_events_but_recreation_works() -> None:
    cache = allocation_cache()
    cache.apply("Job", job("web", index=20), index=20)
    assert cache.apply("Job", job("web", index=20), index=30, deleted=True)
    assert cache.get(WEB) is None
    assert not cache.apply("Job", job("web", index=20), index=20), "a replay must not resurrect the job"
    assert not cache.apply("Job", job("web", index=20), index=31, deleted=True), "deleting twice changes nothing"
    assert cache.apply("Job", job("web", index=40), index=40), "registered again after the deletion"
    assert not cache.apply("Job", job("web", index=40), index=35, deleted=True), "a deletion older than the object"
    assert cache.get(WEB) is not None


def test_tombstones_are_bounded() -> None:
    cache = Cache([CachedKind("Job")], max_tombstones_per_kind=2)
    for number in range(3):
        cache.apply("Job", job(f"j{number}", index=10 + number), index=10 + number)
        cache.apply("Job", job(f"j{number}", index=10 + number), index=20 + number, deleted=True)
    assert cache.apply("Job", job("j0", index=5), index=5), "the oldest tombstone was dropped to respect the limit"
    assert not cache.apply("Job", job("j2", index=5), index=5), "the newest tombstones are kept"


def test_replace_all_reports_what_appeared_changed_and_vanished() -> None:
    cache = allocation_cache()
    cache.replace_all("Job", [job("a", index=1), job("b", index=2), job("c", index=3)], index=3)
    diff = cache.replace_all("Job", [job("a", index=1), job("b", index=5, status="dead"), job("d", index=6)], index=6)
    assert diff.added == [ObjectKey("Job", "default", "d")]
    assert diff.changed == [ObjectKey("Job", "default", "b")]
    assert list(diff.removed) == [ObjectKey("Job", "default", "c")]
    assert diff.removed[ObjectKey("Job", "default", "c")]["ID"] == "c", "the last state, for mapping to keys"
    assert sorted(key.name for key in diff.keys_to_enqueue()) == ["b", "c", "d"]
    assert sorted(key.name for key in cache.keys("Job")) == ["a", "b", "d"]
    assert not cache.replace_all(
        "Job", [job("a", index=1), job("b", index=5, status="dead"), job("d", index=6)], index=7
    )


def test_replace_all_keeps_objects_newer_than_the_list() -> None:
    cache = allocation_cache()
    cache.apply("Job", job("a", index=50, status="dead"), index=50)
    cache.apply("Job", job("b", index=51), index=51)
    diff = cache.replace_all("Job", [job("a", index=40)], index=45)
    assert not diff
    assert cache.get(ObjectKey("Job", "default", "a"))["Status"] == "dead"  # type: ignore[index]
    assert cache.get(ObjectKey("Job", "default", "b")) is not None, "created after the list was taken"


def test_replace_all_clears_tombstones_of_listed_objects_and_leaves_tombstones_for_vanished_ones() -> None:
    cache = allocation_cache()
    cache.apply("Job", job("a", index=10), index=10)
    cache.apply("Job", job("a", index=10), index=12, deleted=True)
    cache.replace_all("Job", [job("a", index=9), job("b", index=11)], index=13)
    assert cache.get(ObjectKey("Job", "default", "a")) is not None, "the list is authoritative"
    cache.replace_all("Job", [], index=14)
    assert not cache.apply("Job", job("b", index=11), index=11), "a vanished object is not brought back by a replay"


def test_limits_refuse_new_objects_and_leave_the_cache_unchanged() -> None:
    cache = Cache([CachedKind("Job")], max_objects_per_kind=2)
    cache.apply("Job", job("a", index=1), index=1)
    cache.apply("Job", job("b", index=2), index=2)
    with pytest.raises(CacheFull, match=r"max_objects_per_kind=2.*Job/default/c"):
        cache.apply("Job", job("c", index=3), index=3)
    assert cache.apply("Job", job("a", index=4), index=4), "updates of cached objects still work"
    with pytest.raises(CacheFull, match="left unchanged"):
        cache.replace_all("Job", [job(name, index=5) for name in "xyz"], index=5)
    assert sorted(key.name for key in cache.keys("Job")) == ["a", "b"]
    assert cache.size("Job") == 2


def test_uncached_kinds_are_refused_clearly() -> None:
    cache = allocation_cache()
    with pytest.raises(UncachedKind, match=r"no kind 'Node'.*Allocation"):
        cache.apply("Node", {"ID": "n1", "ModifyIndex": 1}, index=1)
    with pytest.raises(UncachedKind):
        cache.get(NODE_1)


def test_namespaces_sizes_and_custom_resources() -> None:
    cache = Cache([CachedKind("Job"), CachedKind("GitSource", fields=("spec.url",))])
    cache.apply("Job", job("web", index=1), index=1)
    cache.apply("Job", job("web", index=2) | {"Namespace": "prod"}, index=2)
    assert len(cache.objects("Job")) == 2
    assert [obj["Namespace"] for obj in cache.objects("Job", namespace="prod")] == ["prod"]
    assert cache.keys("Job", namespace="default") == [WEB]
    resource = {
        "apiVersion": "nomad-operator.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "cluster", "namespace": "ops", "resourceVersion": 12},
        "spec": {"url": "https://example.org/repo.git", "branch": "main"},
        "status": {"revision": "abc"},
    }
    assert cache.apply("GitSource", resource, index=12)
    stored = cache.get(ObjectKey("GitSource", "ops", "cluster"))
    assert stored is not None
    assert stored["spec"] == {"url": "https://example.org/repo.git"}
    assert stored["metadata"]["resourceVersion"] == 12
    assert not cache.apply("GitSource", resource, index=13), "the same resourceVersion is not a change"
    assert cache.sizes() == {"Job": 2, "GitSource": 1}


def test_bad_cache_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Cache([CachedKind("Job"), CachedKind("Job")])
    with pytest.raises(ValueError, match="over Allocation, not Job"):
        Cache([CachedKind("Job", indexes=(ALLOCATIONS_BY_JOB,))])


def test_a_wildcard_segment_projects_every_entry_of_a_map() -> None:
    projection = Projection(["TaskStates.*.State", "TaskStates.*.Restarts", "TaskStates.sidecar", "Meta.*"])
    alloc = {
        "TaskStates": {
            "web": {"State": "running", "Restarts": 2, "Events": [{"Type": "Started"}] * 10},
            "log": {"State": "dead", "Failed": True, "Events": []},
            "sidecar": {"State": "running", "Events": [{"Type": "Started"}]},
        },
        "Meta": {"a": "1", "b": "2"},
        "Other": 1,
    }
    assert projection.apply(alloc) == {
        "TaskStates": {
            "web": {"State": "running", "Restarts": 2},
            "log": {"State": "dead"},
            "sidecar": {"State": "running", "Events": [{"Type": "Started"}]},
        },
        "Meta": {"a": "1", "b": "2"},
    }
    assert Projection(["TaskStates.*.State"]).apply({"TaskStates": None}) == {"TaskStates": None}
