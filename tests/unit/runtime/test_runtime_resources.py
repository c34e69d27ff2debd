"""Resources in Nomad Variables: encoding, paths, generation, status and finalizers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from nomad_operator.runtime.errors import InvalidResource, ResourceTooLarge, UndecodableVariable
from nomad_operator.runtime.resources import (
    ObjectMeta,
    Resource,
    add_finalizer,
    decode_document,
    encode_items,
    items_size,
    kind_prefix,
    may_be_removed,
    merge_spec_write,
    parse_variable_path,
    plan_delete,
    remove_finalizer,
    variable_path,
    with_status,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def resource(*, spec: dict[str, object] | None = None, **meta: object) -> Resource:
    return Resource(
        api_version="nomad-operator.io/v1alpha1",
        kind="GitSource",
        metadata=ObjectMeta(name="cluster", namespace="ops", **meta),  # type: ignore[arg-type]
        spec=spec if spec is not None else {"url": "https://example.org/r.git"},
    )


def test_variable_paths() -> None:
    assert variable_path("GitSource", "ops", "cluster") == "nomad-operator/resources/gitsource/ops/cluster"
    assert parse_variable_path("nomad-operator/resources/gitsource/ops/cluster") == ("gitsource", "ops", "cluster")
    assert kind_prefix("GitSource") == "nomad-operator/resources/gitsource/"
    with pytest.raises(InvalidResource, match=r"metadata\.name 'a/b' must match"):
        variable_path("GitSource", "ops", "a/b")


@pytest.mark.parametrize(
    "path",
    ["nomad-operator/resources/gitsource/ops", "other/gitsource/ops/x", "nomad-operator/resources/a/b/c/d", ""],
)
def test_paths_that_are_not_resources_are_refused(path: str) -> None:
    with pytest.raises(UndecodableVariable, match="is not a resource path"):
        parse_variable_path(path)


def test_encode_and_decode_round_trip_with_resource_version_from_the_modify_index() -> None:
    original = resource(generation=3, resource_version=99, finalizers=("nomad-operator.io/cleanup",))
    original = with_status(original, {"revision": "abc"})
    items = encode_items(original)
    assert list(items) == ["resource"]
    stored = orjson.loads(items["resource"])
    assert "resourceVersion" not in stored["metadata"], "the version would be stale the moment it was written"
    assert " " not in items["resource"], "compact JSON"
    document = decode_document(items, modify_index=120, path="p")
    decoded = Resource.from_dict(document)
    assert decoded.metadata.resource_version == 120
    assert decoded == replace(original, metadata=replace(original.metadata, resource_version=120))


def test_items_size_is_nomads_measure() -> None:
    assert items_size({"resource": "é"}) == len("resource") + 2
    big = resource(spec={"blob": "x" * 66_000})
    with pytest.raises(ResourceTooLarge, match="at most 65536 bytes"):
        encode_items(big)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({}, "has no 'resource' item"),
        ({"resource": "{not json"}, "is not JSON"),
        ({"resource": "[1, 2]"}, "is not a resource document"),
        ({"resource": '{"metadata": 5}'}, "is not a resource document"),
    ],
)
def test_undecodable_variables_are_refused_with_their_path(items: dict[str, str], message: str) -> None:
    with pytest.raises(UndecodableVariable, match=message) as caught:
        decode_document(items, modify_index=1, path="nomad-operator/resources/gitsource/ops/x")
    assert "nomad-operator/resources/gitsource/ops/x" in str(caught.value)


def test_generation_counts_spec_changes_only() -> None:
    created = merge_spec_write(resource(generation=7, deletion_timestamp="x"), stored=None)
    assert created.metadata.generation == 1
    assert created.metadata.deletion_timestamp is None, "users cannot set deletionTimestamp"
    stored = replace(with_status(created, {"revision": "abc"}), metadata=replace(created.metadata, resource_version=5))

    same = merge_spec_write(resource(labels={"team": "ops"}), stored=stored)
    assert same.metadata.generation == 1, "a write that leaves the spec alone keeps the generation"
    assert same.metadata.labels == {"team": "ops"}
    assert same.status == {"revision": "abc"}, "a spec write never erases status"
    assert same.metadata.resource_version == 5

    changed = merge_spec_write(resource(spec={"url": "https://example.org/other.git"}), stored=same)
    assert changed.metadata.generation == 2
    assert with_status(changed, {"revision": "def"}).metadata.generation == 2, "status writes keep the generation"


def test_delete_without_finalizers_removes_at_once() -> None:
    assert plan_delete(resource(), now=NOW) is None


def test_delete_with_finalizers_marks_and_waits_for_them() -> None:
    stored = add_finalizer(resource(), "nomad-operator.io/cleanup")
    assert add_finalizer(stored, "nomad-operator.io/cleanup") is stored
    marked = plan_delete(stored, now=NOW)
    assert marked is not None
    assert marked.metadata.deletion_timestamp == "2024-05-01T12:00:00Z"
    assert marked.deleting
    assert not may_be_removed(marked)
    later = datetime(2024, 5, 2, tzinfo=UTC)
    assert plan_delete(marked, now=later) is marked, "the first deletion time is kept"
    with pytest.raises(InvalidResource, match="being deleted"):
        add_finalizer(marked, "other.io/x")
    released = remove_finalizer(marked, "nomad-operator.io/cleanup")
    assert may_be_removed(released)
    assert not may_be_removed(remove_finalizer(stored, "nomad-operator.io/cleanup")), "not deleting: keep it"
