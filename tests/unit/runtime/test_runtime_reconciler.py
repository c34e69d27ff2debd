"""The declaration API: keys, results, watches and controllers, and the errors for bad declarations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from nomad_operator.runtime.errors import UnidentifiableObject
from nomad_operator.runtime.reconciler import (
    Controller,
    ObjectKey,
    Result,
    TerminalError,
    Watch,
    job_of_allocation,
    key_of,
    node_of_allocation,
)

ALLOC = {"ID": "a1", "Namespace": "prod", "JobID": "web", "NodeID": "n1", "ModifyIndex": 7}


async def reconcile(key: ObjectKey) -> Result:
    return Result()


def test_object_keys_are_small_hashable_readable_values() -> None:
    key = ObjectKey("Job", "default", "web")
    assert str(key) == "Job/default/web"
    assert str(ObjectKey("Node", "", "n1")) == "Node/n1"
    assert key == ObjectKey("Job", "default", "web")
    assert len({key, ObjectKey("Job", "default", "web")}) == 1
    assert sorted([ObjectKey("Job", "b", "x"), ObjectKey("Job", "a", "y")])[0].namespace == "a"
    with pytest.raises(AttributeError):
        key.name = "other"  # type: ignore[misc]


def test_key_of_nomad_objects_and_custom_resources() -> None:
    assert key_of("Allocation", ALLOC) == ObjectKey("Allocation", "prod", "a1")
    assert key_of("Node", {"ID": "n1", "Name": "pi1"}) == ObjectKey("Node", "", "n1")
    resource = {"kind": "GitSource", "metadata": {"name": "cluster", "namespace": "ops"}}
    assert key_of("GitSource", resource) == ObjectKey("GitSource", "ops", "cluster")


@pytest.mark.parametrize(
    ("kind", "obj", "message"),
    [
        ("Job", {"Name": "web"}, "no ID or metadata.name"),
        ("Job", {"ID": ""}, "no ID"),
        ("GitSource", {"metadata": {"namespace": "ops"}}, "no ID or metadata.name"),
        ("Job", {"ID": "web", "Namespace": 3}, "non-string namespace"),
    ],
)
def test_key_of_refuses_unidentifiable_objects(kind: str, obj: dict[str, Any], message: str) -> None:
    with pytest.raises(UnidentifiableObject, match=message):
        key_of(kind, obj)


def test_builtin_mappers() -> None:
    assert job_of_allocation(ALLOC) == [ObjectKey("Job", "prod", "web")]
    assert job_of_allocation({"ID": "x"}) == []
    assert node_of_allocation(ALLOC) == [ObjectKey("Node", "", "n1")]
    assert node_of_allocation({"ID": "x", "NodeID": ""}) == []


@pytest.mark.parametrize("delay", [-1.0, math.inf, math.nan, "5"])
def test_result_refuses_bad_delays(delay: Any) -> None:
    with pytest.raises(ValueError, match="requeue_after"):
        Result(requeue_after=delay)


def test_result_and_terminal_error() -> None:
    assert Result().requeue_after is None
    assert Result(requeue_after=0).requeue_after == 0
    error = TerminalError("bad spec", reason="InvalidSpec")
    assert str(error) == "bad spec"
    assert error.reason == "InvalidSpec"
    assert TerminalError("x").reason == "TerminalError"


def test_watch_maps_changes_to_keys() -> None:
    assert Watch("Allocation").keys_for(ALLOC) == [ObjectKey("Allocation", "prod", "a1")]
    assert Watch("Allocation", map_to=job_of_allocation).keys_for(ALLOC) == [ObjectKey("Job", "prod", "web")]


def test_watch_refuses_a_mapper_that_returns_junk() -> None:
    def bad(obj: Mapping[str, Any]) -> Iterable[ObjectKey]:
        return ["web"]  # type: ignore[list-item]

    with pytest.raises(TypeError, match="non-ObjectKey"):
        Watch("Allocation", map_to=bad).keys_for(ALLOC)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"kind": "job"}, ValueError, "CamelCase"),
        ({"kind": ""}, ValueError, "CamelCase"),
        ({"kind": "Job", "fields": "Status"}, TypeError, "not the string"),
        ({"kind": "Job", "fields": ("Status", "Task States")}, ValueError, "invalid field paths"),
        ({"kind": "Job", "fields": ("Meta.",)}, ValueError, "invalid field paths"),
        ({"kind": "Job", "fields": ("*.Meta",)}, ValueError, "invalid field paths"),
    ],
)
def test_watch_refuses_bad_declarations(arguments: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Watch(**arguments)


def test_controller_collects_fields_and_keys_over_its_watches() -> None:
    controller = Controller(
        "gitops",
        reconcile=reconcile,
        watches=[
            Watch("Job", fields=("Meta", "Status")),
            Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "TaskStates.*.State")),
            Watch("Allocation", map_to=job_of_allocation, fields=("ClientStatus", "JobID")),
        ],
        max_concurrency=4,
    )
    assert controller.primary_kind == "Job"
    assert controller.watched_kinds() == ["Job", "Allocation"]
    assert controller.fields_for("Allocation") == ("JobID", "TaskStates.*.State", "ClientStatus")
    assert controller.fields_for("Node") == ()
    assert controller.keys_for("Allocation", ALLOC) == [ObjectKey("Job", "prod", "web")], "duplicates collapse"
    assert isinstance(controller.watches, tuple)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"name": "GitOps"}, ValueError, "controller name"),
        ({"name": "a b"}, ValueError, "controller name"),
        ({"watches": []}, ValueError, "watches nothing"),
        ({"watches": ["Job"]}, TypeError, "Watch"),
        ({"max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"resync_period": 0}, ValueError, "resync_period"),
        ({"reconcile": "not callable"}, TypeError, "async callable"),
    ],
)
def test_controller_refuses_bad_declarations(arguments: dict[str, Any], error: type[Exception], message: str) -> None:
    declaration: dict[str, Any] = {"name": "nodes", "reconcile": reconcile, "watches": [Watch("Node")]}
    declaration.update(arguments)
    with pytest.raises(error, match=message):
        Controller(**declaration)
