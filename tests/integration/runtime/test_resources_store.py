"""The custom-resource store against the simulator over real HTTP: CAS writes, generation, status, finalizers,
validation that stores nothing, and the blocking-query watch."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nomad_operator.nomad import NomadClient, NomadSettings, RetryPolicy
from nomad_operator.runtime import InvalidResource, ResourceTooLarge, UnknownKind, load_kinds
from nomad_operator.runtime.resource_store import (
    ApplyOutcome,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceEvent,
    ResourceNotFound,
    ResourceStore,
    diff_listing,
    next_watch_index,
)
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

DEADLINE_S = 15.0
WIDGET_KIND = """
apiVersion: test.nomad-operator.io/v1
kind: Widget
plural: widgets
schema:
  spec:
    type: object
    required: [size]
    additionalProperties: false
    properties:
      size: {type: integer, minimum: 1}
      colour: {type: string, enum: [red, blue]}
      blob: {type: string}
  status:
    type: object
    additionalProperties: false
    properties:
      observedGeneration: {type: integer}
      count: {type: integer, minimum: 0}
printerColumns:
  - {name: Size, path: .spec.size, type: integer}
"""
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def widget(name: str = "w1", *, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.nomad-operator.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": 1, **spec},
    }


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(SimConfig(nodes=1), host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
async def store(sim: RunningSimulator, tmp_path: Path, project_root: Path) -> AsyncIterator[ResourceStore]:
    (tmp_path / "widget.yaml").write_text(WIDGET_KIND)
    shutil.copy(project_root / "crds" / "gitsource.yaml", tmp_path / "gitsource.yaml")
    async with NomadClient(NomadSettings(address=sim.address), retry=RetryPolicy(max_attempts=1)) as client:
        yield ResourceStore(client, load_kinds(tmp_path), now=lambda: NOW)


def resource_writes(sim: RunningSimulator) -> int:
    return sum(1 for entry in sim.cluster.stats_snapshot()["write_log"] if "/resources/" in entry["path"])


def stored_paths(sim: RunningSimulator) -> list[str]:
    return sorted(path for (_, path) in sim.cluster.store.variables if path.startswith("nomad-operator/resources/"))


async def test_create_get_and_list(store: ResourceStore, sim: RunningSimulator) -> None:
    created = await store.create(widget("w1", colour="red"))
    await store.create(widget("w2", namespace="ops"))
    assert created.metadata.generation == 1
    assert created.metadata.resource_version > 0
    assert stored_paths(sim) == ["nomad-operator/resources/widget/default/w1", "nomad-operator/resources/widget/ops/w2"]
    fetched = await store.get("Widget", "w1")
    assert fetched == created
    assert [r.metadata.name for r in await store.list("Widget")] == ["w1", "w2"]
    assert [r.metadata.name for r in await store.list("Widget", namespace="ops")] == ["w2"]
    with pytest.raises(ResourceAlreadyExists, match="already exists") as raised:
        await store.create(widget("w1", colour="blue"))
    assert raised.value.current == created
    with pytest.raises(ResourceNotFound, match="Widget default/nope not found"):
        await store.get("Widget", "nope")


async def test_generation_counts_spec_changes_only_and_unchanged_applies_write_nothing(
    store: ResourceStore, sim: RunningSimulator
) -> None:
    _, outcome = await store.apply(widget(size=1))
    assert outcome is ApplyOutcome.CREATED
    second, outcome = await store.apply({**widget(size=2), "metadata": {"name": "w1", "labels": {"team": "ops"}}})
    assert outcome is ApplyOutcome.CONFIGURED
    assert second.metadata.generation == 2
    labelled, outcome = await store.apply({**widget(size=2), "metadata": {"name": "w1", "labels": {"team": "dev"}}})
    assert outcome is ApplyOutcome.CONFIGURED
    assert labelled.metadata.generation == 2
    writes = resource_writes(sim)
    again, outcome = await store.apply({**widget(size=2), "metadata": {"name": "w1", "labels": {"team": "dev"}}})
    assert outcome is ApplyOutcome.UNCHANGED
    assert again == labelled
    assert resource_writes(sim) == writes


async def test_status_writes_keep_spec_and_generation_and_lose_races_cleanly(store: ResourceStore) -> None:
    created = await store.create(widget(size=3))
    reported = await store.update_status(created, {"observedGeneration": created.metadata.generation, "count": 0})
    assert reported.spec == created.spec
    assert reported.metadata.generation == 1
    assert reported.status == {"observedGeneration": 1, "count": 0}
    changed = await store.update(widget(size=4))
    assert changed.metadata.generation == 2
    assert changed.status == reported.status
    with pytest.raises(ResourceConflict, match="changed since it was read") as raised:
        await store.update_status(reported, {"observedGeneration": 1, "count": 1})  # based on the old version
    assert raised.value.current is not None
    assert raised.value.current.metadata.generation == 2
    assert (await store.get("Widget", "w1")).status == {"observedGeneration": 1, "count": 0}


async def test_concurrent_status_writers_that_retry_on_conflict_lose_no_update(store: ResourceStore) -> None:
    await store.create(widget())

    async def increment(times: int) -> int:
        conflicts = 0
        for _ in range(times):
            while True:
                current = await store.get("Widget", "w1")
                count = int(current.status.get("count", 0))
                try:
                    await store.update_status(current, {"count": count + 1})
                    break
                except ResourceConflict:
                    conflicts += 1  # re-read and decide again
        return conflicts

    conflicts = await asyncio.gather(*(increment(10) for _ in range(3)))
    assert (await store.get("Widget", "w1")).status["count"] == 30
    assert sum(conflicts) > 0  # the writers did race


async def test_update_at_a_stale_resource_version_is_a_conflict(store: ResourceStore) -> None:
    created = await store.create(widget())
    await store.update(widget(size=2))
    stale = widget(size=5)
    stale["metadata"]["resourceVersion"] = created.metadata.resource_version
    with pytest.raises(ResourceConflict, match="read it again"):
        await store.update(stale)
    assert (await store.get("Widget", "w1")).spec == {"size": 2}
    with pytest.raises(ResourceNotFound):
        await store.update(widget("absent"))


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        (widget(size=0, colour="green", extra=1), InvalidResource, r"spec\.colour.*\n.*spec\.size|spec: Add"),
        ({**widget(), "kind": "Gadget"}, UnknownKind, "unknown kind 'Gadget'"),
        ({**widget(), "apiVersion": "v9"}, InvalidResource, "apiVersion: Widget is"),
        (widget("bad/name"), InvalidResource, r"metadata\.name 'bad/name' must match"),
        (widget("x" * 120), InvalidResource, "Nomad allows 128"),
        (widget(blob="x" * 70_000), ResourceTooLarge, "a Nomad Variable holds at most 65536 bytes"),
    ],
)
async def test_bad_resources_are_refused_and_nothing_is_stored(
    store: ResourceStore, sim: RunningSimulator, document: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await store.create(document)
    with pytest.raises(error, match=message):
        await store.apply(document)
    assert stored_paths(sim) == []
    assert resource_writes(sim) == 0


async def test_every_violation_is_listed_at_once(store: ResourceStore) -> None:
    with pytest.raises(InvalidResource) as raised:
        await store.create(widget(size=0, colour="green", extra=1))
    assert len(raised.value.violations) == 3
    assert "nothing was stored" in str(raised.value)


async def test_bad_status_is_refused_and_the_stored_status_stays(store: ResourceStore) -> None:
    created = await store.create(widget())
    reported = await store.update_status(created, {"count": 1})
    with pytest.raises(InvalidResource, match=r"status\.count"):
        await store.update_status(reported, {"count": -1, "unknown": True})
    with pytest.raises(ResourceTooLarge):
        await store.update(widget(blob="y" * 70_000))
    assert (await store.get("Widget", "w1")).status == {"count": 1}


async def test_finalizers_hold_deletion_until_removed(store: ResourceStore, sim: RunningSimulator) -> None:
    created = await store.create(widget())
    guarded = await store.add_finalizer(created, "test.io/cleanup")
    assert await store.add_finalizer(guarded, "test.io/cleanup") is guarded  # already there: no write
    # A user's apply that does not mention finalizers keeps the controller's.
    reapplied, _ = await store.apply(widget(size=2))
    assert reapplied.metadata.finalizers == ("test.io/cleanup",)
    marked = await store.delete("Widget", "w1")
    assert marked is not None
    assert marked.metadata.deletion_timestamp == "2024-05-01T12:00:00Z"
    assert await store.delete("Widget", "w1") == marked  # deleting again changes nothing
    with pytest.raises(InvalidResource, match="is being deleted"):
        await store.add_finalizer(marked, "test.io/other")
    with pytest.raises(InvalidResource, match="cannot add finalizers"):
        await store.apply({**widget(size=2), "metadata": {"name": "w1", "finalizers": ["test.io/cleanup", "x.io/y"]}})
    assert await store.remove_finalizer(marked, "test.io/cleanup") is None
    assert stored_paths(sim) == []
    plain = await store.create(widget("w2"))
    assert await store.delete("Widget", "w2") is None
    with pytest.raises(ResourceNotFound):
        await store.get("Widget", plain.metadata.name)


async def test_gitsource_kind_accepts_a_full_source_and_refuses_bad_fields(store: ResourceStore) -> None:
    source = {
        "apiVersion": "nomad-operator.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "cluster"},
        "spec": {
            "url": "https://git.example.org/cluster.git",
            "ref": "main",
            "paths": ["jobs/*.nomad"],
            "interval": "30s",
            "prune": True,
            "pruneGracePeriod": "5m",
            "allowedNamespaces": ["default"],
            "webhookSecret": {"variable": "nomad-operator/hooks", "item": "secret"},
        },
    }
    created = await store.create(source)
    assert created.spec["interval"] == "30s"
    bad = {**source, "metadata": {"name": "bad"}, "spec": {"url": "ftp://x", "prune": "yes", "webhookSecret": {}}}
    with pytest.raises(InvalidResource) as raised:
        await store.create(bad)
    assert [violation.split(":")[0] for violation in raised.value.violations] == [
        "spec.prune",
        "spec.url",
        "spec.webhookSecret",
    ]


def list_requests(sim: RunningSimulator) -> int:
    return int(sim.cluster.stats_snapshot()["requests"].get("GET /v1/vars", 0))


async def collect(store: ResourceStore, events: list[ResourceEvent], **options: Any) -> None:
    async for event in store.watch("Widget", wait=1.0, **options):
        events.append(event)


async def eventually(check: Callable[[], bool], *, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while loop.time() < end:
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for(events: list[ResourceEvent], count: int) -> None:
    await eventually(lambda: len(events) >= count, what=f"{count} watch events")


async def test_watch_sees_existing_created_updated_and_deleted_resources(
    store: ResourceStore, sim: RunningSimulator
) -> None:
    await store.create(widget("before"))
    events: list[ResourceEvent] = []
    task = asyncio.create_task(collect(store, events))
    try:
        await wait_for(events, 1)
        created = await store.create(widget("w1"))
        await wait_for(events, 2)
        updated = await store.update(widget("w1", size=9))
        await wait_for(events, 3)
        # Nomad answering 500 for a while: the watch backs off and carries on.
        sim.cluster.inject_fault({"path": "^/v1/vars$", "status": 500})
        listed = list_requests(sim)
        await eventually(lambda: list_requests(sim) >= listed + 3, what="the watch to meet the fault twice")
        await store.delete("Widget", "w1")
        sim.cluster.clear_faults()
        await wait_for(events, 4)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(e.key.name, e.deleted) for e in events] == [("before", False), ("w1", False), ("w1", False), ("w1", True)]
    assert events[1].resource_version == created.metadata.resource_version
    assert events[2].resource_version == updated.metadata.resource_version
    assert all(e.key.kind == "Widget" and e.key.namespace == "default" for e in events)


def test_listing_diffs_and_index_resets() -> None:
    known = {"p/a": 5, "p/b": 6}
    diff = diff_listing(known, [{"Path": "p/a", "ModifyIndex": 5}, {"Path": "p/c", "ModifyIndex": 9}])
    assert diff.changed == ("p/c",)
    assert diff.deleted == ("p/b",)
    assert diff.known == {"p/a": 5, "p/c": 9}
    assert diff_listing(
        diff.known, [{"Path": "p/a", "ModifyIndex": 10}, {"Path": "p/c", "ModifyIndex": 9}]
    ).changed == ("p/a",)
    assert next_watch_index(10, 12) == (12, False)
    assert next_watch_index(10, 10) == (10, False)
    assert next_watch_index(10, 3) == (3, True)  # the cluster was restored or restarted: compare everything again
    assert next_watch_index(0, 0) == (1, False)  # never 0: a query at index 0 would not block
