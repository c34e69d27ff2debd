"""Plan diffs and list filters: pure functions over dicts."""

from __future__ import annotations

import pytest

from nomad_operator.sim.diff import job_diff
from nomad_operator.sim.errors import ApiError
from nomad_operator.sim.faults import parse_fault
from nomad_operator.sim.http.filtering import compile_filter

OLD = {"ID": "web", "Version": 1, "Datacenters": ["dc1"], "Meta": {"a": "1"}, "Priority": 50,
       "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Config": {"image": "a"}}]}]}


def test_new_job_is_added() -> None:
    diff = job_diff(None, OLD)
    assert diff["Type"] == "Added"
    assert diff["ID"] == "web"
    assert diff["TaskGroups"][0]["Type"] == "Added"


def test_server_fields_are_not_changes() -> None:
    assert job_diff(OLD, dict(OLD, Version=9, ModifyIndex=100))["Type"] == "None"


def test_fields_objects_groups_and_tasks() -> None:
    new = dict(OLD, Priority=70, Meta={"a": "2"}, Datacenters=["dc1", "dc2"],
               TaskGroups=[{"Name": "g", "Count": 3, "Tasks": [{"Name": "t", "Config": {"image": "b"}}]},
                           {"Name": "h", "Count": 1, "Tasks": []}])
    diff = job_diff(OLD, new, updates={"g": {"InPlaceUpdate": 1, "Place": 2}})
    assert diff["Type"] == "Edited"
    assert {(f["Name"], f["Old"], f["New"], f["Type"]) for f in diff["Fields"]} == {
        ("Priority", "50", "70", "Edited"), ("Meta[a]", "1", "2", "Edited")}
    datacenters = next(o for o in diff["Objects"] if o["Name"] == "Datacenters")
    assert datacenters["Fields"] == [{"Annotations": None, "Name": "Datacenters", "New": "dc2", "Old": "",
                                      "Type": "Added"}]
    groups = {g["Name"]: g for g in diff["TaskGroups"]}
    assert groups["h"]["Type"] == "Added"
    assert groups["g"]["Type"] == "Edited"
    assert groups["g"]["Updates"] == {"in-place update": 1, "create": 2}
    assert groups["g"]["Fields"][0]["Name"] == "Count"
    task = groups["g"]["Tasks"][0]
    assert task["Objects"][0]["Name"] == "Config"
    assert task["Objects"][0]["Fields"][0]["New"] == "b"


ITEMS = [{"ID": "a", "Status": "running", "Meta": {"owner": "git"}, "Tags": ["x"]},
         {"ID": "b", "Status": "dead", "Meta": {}, "Tags": []}]


@pytest.mark.parametrize(("expression", "expected"), [
    ('Status == "running"', ["a"]),
    ('Status != "running"', ["b"]),
    ('Meta.owner == "git"', ["a"]),
    ('"x" in Tags', ["a"]),
    ('"x" not in Tags', ["b"]),
    ("Meta is empty", ["b"]),
    ('Status == "dead" or Meta.owner == "git"', ["a", "b"]),
    ('Status == "running" and ID == "b"', []),
])
def test_filters(expression: str, expected: list[str]) -> None:
    predicate = compile_filter(expression)
    assert [item["ID"] for item in ITEMS if predicate(item)] == expected


@pytest.mark.parametrize("expression", ["Status ~ x", '(Status == "a")', "Status matches 1", 'Status == "a" xor 1'])
def test_unsupported_filters_are_400(expression: str) -> None:
    with pytest.raises(ApiError) as raised:
        compile_filter(expression)
    assert raised.value.status == 400
    assert raised.value.message.startswith("failed to create result paginator: failed to read filter expression")


@pytest.mark.parametrize("spec", [None, {"status": 200}, {"status": 500, "rate": 2}, {"path": "("},
                                  {"latency_ms": -1}, {"path": "x"}, {"status": 500, "method": "G E T"}])
def test_bad_fault_specs(spec: object) -> None:
    with pytest.raises(ApiError) as raised:
        parse_fault(spec)
    assert raised.value.status == 400
