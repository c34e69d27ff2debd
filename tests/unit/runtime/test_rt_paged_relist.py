"""`PagedRelist`, the page-by-page replace-all of one kind: what it adds, changes, keeps, removes and announces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from nomad_operator.runtime.cache import ALLOCATIONS_BY_JOB, Cache, CachedKind
from nomad_operator.runtime.errors import CacheFull, UnidentifiableObject
from nomad_operator.runtime.paged_relist import PagedRelist
from nomad_operator.runtime.reconciler import ObjectKey


def alloc(alloc_id: str, version: int, *, job: str = "web", status: str = "running") -> dict[str, Any]:
    return {"ID": alloc_id, "Namespace": "default", "ModifyIndex": version, "JobID": job, "ClientStatus": status,
            "TaskStates": {"server": {"State": "running", "Events": ["big"] * 50}}}  # fmt: skip


def key(alloc_id: str) -> ObjectKey:
    return ObjectKey("Allocation", "default", alloc_id)


class Announced:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float | None]] = []

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None:
        self.calls.append((kind, str(obj["ID"]), since))

    def ids(self) -> list[str]:
        return [alloc_id for _, alloc_id, _ in self.calls]


def make_cache(*, max_objects: int = 100) -> Cache:
    spec = CachedKind("Allocation", ("JobID", "ClientStatus"), (ALLOCATIONS_BY_JOB,))
    return Cache([spec], max_objects_per_kind=max_objects)


def relist(cache: Cache, pages: list[tuple[int, list[dict[str, Any]]]], listener: Announced | None = None) -> int:
    paged = PagedRelist(cache, "Allocation", listener=listener)
    for index, objects in pages:
        paged.begin_page(index)
        paged.apply_page(objects, index=index, since=1.0)
    return paged.finish(since=2.0)


def test_pages_are_projected_into_the_cache_as_they_come_and_the_first_index_is_the_lists() -> None:
    cache = make_cache()
    announced = Announced()

    index = relist(cache, [(10, [alloc("a", 5), alloc("b", 6)]), (12, [alloc("c", 11)])], announced)

    assert index == 10  # the first page's, even though a later page was read at 12
    assert sorted(cache.keys("Allocation"), key=str) == [key("a"), key("b"), key("c")]
    assert cache.get(key("a")) == {"ID": "a", "Namespace": "default", "ModifyIndex": 5, "JobID": "web",
                                   "ClientStatus": "running"}  # fmt: skip
    assert announced.calls == [("Allocation", "a", 1.0), ("Allocation", "b", 1.0), ("Allocation", "c", 1.0)]
    assert len(cache.by_index(ALLOCATIONS_BY_JOB.name, ObjectKey("Job", "default", "web"))) == 3


def test_a_second_list_announces_only_what_changed_or_vanished() -> None:
    cache = make_cache()
    relist(cache, [(10, [alloc("a", 5), alloc("b", 6), alloc("gone", 7)])])
    announced = Announced()
    paged = PagedRelist(cache, "Allocation", listener=announced)

    paged.begin_page(20)
    paged.apply_page([alloc("a", 5), alloc("b", 15, status="failed")], index=20, since=1.0)
    paged.begin_page(21)
    paged.apply_page([alloc("new", 21)], index=21, since=1.0)
    assert paged.finish(since=2.0) == 20

    assert (paged.added, paged.changed, paged.removed, paged.changes) == (1, 1, 1, 3)
    assert announced.ids() == ["b", "new", "gone"]
    assert announced.calls[-1] == ("Allocation", "gone", 2.0)
    assert cache.get(key("gone")) is None
    changed = cache.get(key("b"))
    assert changed is not None
    assert changed["ClientStatus"] == "failed"


def test_kept_keys_and_objects_newer_than_the_list_are_not_removed() -> None:
    cache = make_cache()
    relist(cache, [(10, [alloc("read-in-full", 5), alloc("old", 6)])])
    cache.apply("Allocation", alloc("from-an-event", 30), index=30)  # newer than the next list's first page
    paged = PagedRelist(cache, "Allocation", listener=None)

    paged.begin_page(25)
    paged.keep(key("read-in-full"))  # unchanged stub of a kind read in full: kept without being applied again
    paged.apply_page([], index=25, since=None)
    paged.finish(since=None)

    assert cache.get(key("read-in-full")) is not None
    assert cache.get(key("from-an-event")) is not None
    assert cache.get(key("old")) is None


def test_an_older_list_copy_does_not_undo_a_newer_cached_version() -> None:
    cache = make_cache()
    cache.apply("Allocation", alloc("a", 40, status="failed"), index=40)
    announced = Announced()

    relist(cache, [(35, [alloc("a", 30)])], announced)

    assert cache.get(key("a"))["ClientStatus"] == "failed"  # type: ignore[index]
    assert announced.calls == []


def test_a_removed_object_created_again_after_the_first_page_is_accepted_from_the_stream() -> None:
    cache = make_cache()
    relist(cache, [(10, [alloc("a", 5)])])
    # The second list does not hold "a": deleted after page 1 (index 50) and created again (index 52) before page 2.
    relist(cache, [(50, []), (60, [])])

    assert cache.get(key("a")) is None
    assert cache.apply("Allocation", alloc("a", 52), index=52)  # its creation event: the tombstone is not above it
    assert not cache.apply("Allocation", alloc("a", 5), index=5)  # while a replay of the old one stays refused


def test_a_full_cache_stops_the_list_and_keeps_the_pages_already_applied() -> None:
    cache = make_cache(max_objects=2)
    paged = PagedRelist(cache, "Allocation", listener=None)
    paged.begin_page(10)
    paged.apply_page([alloc("a", 5)], index=10, since=None)
    paged.begin_page(11)

    with pytest.raises(CacheFull, match="max_objects_per_kind=2"):
        paged.apply_page([alloc("b", 6), alloc("c", 7)], index=11, since=None)

    assert sorted(cache.keys("Allocation"), key=str) == [key("a"), key("b")]


def test_an_object_without_an_id_is_an_error_naming_the_kind() -> None:
    paged = PagedRelist(make_cache(), "Allocation", listener=None)
    paged.begin_page(1)

    with pytest.raises(UnidentifiableObject, match="Allocation"):
        paged.apply_page([{"Namespace": "default", "ModifyIndex": 1}], index=1, since=None)


def test_finishing_a_list_that_had_no_page_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="without a page"):
        PagedRelist(make_cache(), "Allocation", listener=None).finish(since=None)
