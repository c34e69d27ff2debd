"""The informer's pure decisions and its batch application, without a network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from nomad_operator.nomad import Event, EventBatch, NomadClient
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch, job_of_allocation
from nomad_operator.runtime.informer import (
    Informer,
    cache_for_controllers,
    change_time,
    is_deletion,
    needs_full_read,
    reconnect_reason,
)


async def _noop(key: ObjectKey) -> Result:
    return Result()


CONTROLLER = Controller(
    "probe",
    reconcile=_noop,
    watches=[
        Watch("Job", fields=("Meta",)),
        Watch("Allocation", map_to=job_of_allocation, fields=("ClientStatus",)),
        Watch("Node", fields=("Status",)),
    ],
)


class Announced:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float | None]] = []

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None:
        self.calls.append((kind, obj["ID"], since))


def informer() -> tuple[Informer, Announced]:
    announced = Announced()
    built = Informer(client=NomadClient(), cache=cache_for_controllers([CONTROLLER]), listener=announced)
    return built, announced


def event(topic: str, obj: dict[str, Any], *, index: int, type_: str = "Updated", **payload: Any) -> Event:
    return Event(topic, type_, obj["ID"], obj.get("Namespace", ""), (), index, {topic: obj, **payload})


def alloc(alloc_id: str, *, index: int, status: str = "running") -> dict[str, Any]:
    return {"ID": alloc_id, "Namespace": "default", "JobID": "web", "NodeID": "n1", "ModifyIndex": index,
            "ClientStatus": status, "TaskStates": {"t": {"Events": ["big"] * 10}}}  # fmt: skip


def test_full_reads_are_needed_only_when_stubs_lack_declared_fields() -> None:
    assert needs_full_read("Job", ["Meta"])  # null in a job list stub
    assert not needs_full_read("Job", ["Status", "JobModifyIndex"])
    assert not needs_full_read("Allocation", ["ClientStatus", "TaskStates.*.State"])
    assert needs_full_read("Allocation", ["AllocatedResources"])
    assert needs_full_read("Node", ["*"])
    assert not needs_full_read("Evaluation", ["*"])  # lists return whole evaluations


def test_deletions_are_the_deleted_flag_and_node_deregistration() -> None:
    assert is_deletion("Job", "JobDeregistered", {"Deleted": True, "Job": {}})
    assert not is_deletion("Job", "JobDeregistered", {"Job": {"Stop": True}})  # a stop, not a purge
    assert is_deletion("Node", "NodeDeregistration", {"Node": {}})
    assert not is_deletion("Node", "NodeStreamEvent", {"Node": {}})


def test_change_time_maps_modify_time_to_the_clock_and_never_into_the_future() -> None:
    assert change_time({"ModifyTime": 98_000_000_000}, now_wall=100.0, now_clock=50.0) == pytest.approx(48.0)
    assert change_time({"ModifyTime": 200_000_000_000}, now_wall=100.0, now_clock=50.0) == 50.0
    assert change_time({}, now_wall=100.0, now_clock=50.0) == 50.0
    assert change_time({"ModifyTime": "soon"}, now_wall=100.0, now_clock=50.0) == 50.0


def test_reconnect_reasons_become_a_few_fixed_labels() -> None:
    assert reconnect_reason("nothing received for 45s, not even a heartbeat: the stream is dead") == "silence"
    assert reconnect_reason("an event line longer than 67108864 bytes was skipped") == "oversized-line"
    assert reconnect_reason("the server closed the stream") == "closed"
    assert reconnect_reason("Nomad at 10.0.0.3:4646 is unreachable: connection refused") == "error"


def test_the_cache_keeps_declared_and_index_fields_only() -> None:
    cache = cache_for_controllers([CONTROLLER])
    assert cache.projection("Allocation").apply(alloc("a1", index=5)) == {
        "ID": "a1", "Namespace": "default", "ModifyIndex": 5, "ClientStatus": "running", "JobID": "web", "NodeID": "n1"
    }  # fmt: skip
    assert set(cache.kinds) == {"Job", "Allocation", "Node"}


def test_duplicate_and_replayed_events_are_announced_once() -> None:
    built, announced = informer()
    batch = EventBatch(7, [event("Allocation", alloc("a1", index=7), index=7)])
    assert built.apply_batch(batch) == 1
    assert built.apply_batch(batch) == 0  # the same batch again (a replay after reconnect)
    older = EventBatch(6, [event("Allocation", alloc("a1", index=6, status="pending"), index=6)])
    assert built.apply_batch(older) == 0  # an older version arriving late
    assert [call[:2] for call in announced.calls] == [("Allocation", "a1")]
    cached = built.cache.get(ObjectKey("Allocation", "default", "a1"))
    assert cached is not None
    assert cached["ClientStatus"] == "running"


def test_deletion_removes_and_an_older_replay_cannot_resurrect() -> None:
    built, announced = informer()
    node = {"ID": "n1", "Status": "ready", "ModifyIndex": 3}
    built.apply_batch(EventBatch(3, [event("Node", node, index=3)]))
    built.apply_batch(EventBatch(4, [event("Node", {**node, "ModifyIndex": 4}, index=4, type_="NodeDeregistration")]))
    assert built.cache.get(ObjectKey("Node", "", "n1")) is None
    assert built.apply_batch(EventBatch(3, [event("Node", node, index=3)])) == 0
    assert len(announced.calls) == 2  # the add and the removal


def test_events_of_other_topics_or_without_an_object_are_ignored() -> None:
    built, announced = informer()
    deployment = {"ID": "d1", "Namespace": "default", "ModifyIndex": 2}
    no_object = Event("Job", "JobRegistered", "web", "default", (), 2, {})
    assert built.apply_batch(EventBatch(2, [event("Deployment", deployment, index=2), no_object])) == 0
    assert announced.calls == []


def test_a_malformed_object_is_logged_and_skipped_without_losing_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    built, announced = informer()
    broken = Event("Allocation", "PlanResult", "?", "default", (), 9, {"Allocation": {"Namespace": "default"}})
    good = event("Allocation", alloc("a2", index=9), index=9)
    assert built.apply_batch(EventBatch(9, [broken, good])) == 1
    assert [call[1] for call in announced.calls] == ["a2"]
    assert "not cached" in caplog.text


def test_bad_informer_options_are_refused() -> None:
    cache = cache_for_controllers([CONTROLLER])
    with pytest.raises(ValueError, match="cannot follow"):
        Informer(client=NomadClient(), cache=cache, kinds=["Service"])
    with pytest.raises(ValueError, match="holds no kinds"):
        Informer(client=NomadClient(), cache=cache, kinds=["Deployment"])
    with pytest.raises(ValueError, match="relist_period"):
        Informer(client=NomadClient(), cache=cache, relist_period=0)
