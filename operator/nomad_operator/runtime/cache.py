"""The informers' store: the cluster's objects by kind, namespace and ID, with secondary indexes.

Reconcilers read the cluster from here, never from Nomad directly, so the cache must be right and small:

- **Right.** Nomad's event stream replays batches after a reconnect and can deliver an update after a newer re-list.
  Each object carries its `ModifyIndex` (a custom resource its `metadata.resourceVersion`); an update no newer than the
  cached version is ignored, and deletions leave a bounded tombstone so a replayed older event cannot resurrect a
  deleted object. `replace_all()` (a re-list) reports exactly which keys appeared, changed or vanished, so the informer
  enqueues those and nothing else.
- **Small.** A full allocation is ~7 KiB of JSON, most of it the embedded job. Each kind keeps only the union of the
  field paths its controllers declared (`Watch(fields=...)`), plus identity fields, so 10,000 allocations cost a
  fraction of their wire size. Index values are computed from the full object before projection, so an index never
  forces its fields into the projection.
- **Bounded.** Objects per kind and tombstones per kind have named limits; `CacheFull` says which was hit.

Objects handed out are the cache's own: treat them as read-only (they are typed `Mapping` for that reason).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nomad_operator.runtime.defaults import DEFAULT_CACHE_MAX_OBJECTS_PER_KIND, DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND
from nomad_operator.runtime.errors import CacheFull, UncachedKind
from nomad_operator.runtime.reconciler import ALL_FIELDS, NOMAD_KINDS, Controller, ObjectKey, key_of

NOMAD_IDENTITY_FIELDS = ("ID", "Namespace", "ModifyIndex")
WILDCARD = "*"
"""A path segment matching every key of a mapping: `TaskStates.*.State` keeps each task's State."""
RESOURCE_IDENTITY_FIELDS = ("apiVersion", "kind", "metadata")

# A projection tree: field name -> subtree, where None keeps the whole value.
_Tree = dict[str, "_Tree | None"]


class Projection:
    """Keeps only the declared dotted field paths of an object.

    Lists are projected element by element, and a `*` segment stands for every key of a mapping, so
    `TaskStates.*.State` keeps the state of every task without its event history (the bulk of an allocation).
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(sorted(set(paths)))
        self.keeps_everything = ALL_FIELDS in self.paths
        self._tree: _Tree = {}
        for path in self.paths:
            if path != ALL_FIELDS:
                _add_path(self._tree, path.split("."))

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if self.keeps_everything:
            return dict(obj)
        return _project_mapping(obj, self._tree)


def _add_path(tree: _Tree, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head in tree and tree[head] is None:
        return  # an ancestor path already keeps the whole value
    if not rest:
        tree[head] = None
        return
    subtree = tree.get(head)
    if subtree is None:
        subtree = tree[head] = {}
    _add_path(subtree, rest)


def _project_mapping(obj: Mapping[str, Any], tree: _Tree) -> dict[str, Any]:
    if WILDCARD in tree:
        # Maps keyed by user-chosen names (TaskStates by task, Meta by key): every entry, each projected alike,
        # except names that have a path of their own.
        wildcard = tree[WILDCARD]
        return {name: _project(value, tree.get(name, wildcard)) for name, value in obj.items()}
    return {name: _project(obj[name], subtree) for name, subtree in tree.items() if name in obj}


def _project(value: Any, tree: _Tree | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, Mapping):
        return _project_mapping(value, tree)
    if isinstance(value, list):
        return [_project(item, tree) for item in value]
    return value  # a path into a null or scalar keeps the null or scalar


class IndexFunction(Protocol):
    """Returns the index values an object is found under (none, one, or several)."""

    def __call__(self, obj: Mapping[str, Any], /) -> Iterable[Hashable]: ...


@dataclass(frozen=True, slots=True)
class CacheIndex:
    """A secondary index over one kind, e.g. allocations by job."""

    name: str
    kind: str
    values_of: IndexFunction


def _allocation_job(alloc: Mapping[str, Any]) -> list[Hashable]:
    job_id = alloc.get("JobID")
    return [ObjectKey("Job", str(alloc.get("Namespace", "default")), job_id)] if job_id else []


def _allocation_node(alloc: Mapping[str, Any]) -> list[Hashable]:
    node_id = alloc.get("NodeID")
    return [ObjectKey("Node", "", node_id)] if node_id else []


ALLOCATIONS_BY_JOB = CacheIndex("allocations-by-job", "Allocation", _allocation_job)
"""Allocations under the `ObjectKey` of their job."""
ALLOCATIONS_BY_NODE = CacheIndex("allocations-by-node", "Allocation", _allocation_node)
"""Allocations under the `ObjectKey` of their node."""
DEFAULT_INDEXES = (ALLOCATIONS_BY_JOB, ALLOCATIONS_BY_NODE)


@dataclass(frozen=True, slots=True)
class CachedKind:
    """A kind the cache holds: the fields kept (identity fields are always added) and its indexes."""

    kind: str
    fields: tuple[str, ...] = (ALL_FIELDS,)
    indexes: tuple[CacheIndex, ...] = ()


@dataclass(slots=True)
class CacheDiff:
    """What a re-list changed: keys that appeared or changed, and the last cached state of keys that vanished."""

    added: list[ObjectKey] = field(default_factory=list)
    changed: list[ObjectKey] = field(default_factory=list)
    removed: dict[ObjectKey, Mapping[str, Any]] = field(default_factory=dict)

    def keys_to_enqueue(self) -> list[ObjectKey]:
        """Every key the re-list touched: appeared, changed or vanished."""
        return [*self.added, *self.changed, *self.removed]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class _Entry:
    __slots__ = ("index_values", "obj", "version")

    def __init__(self, obj: dict[str, Any], version: int, index_values: tuple[tuple[str, Hashable], ...]) -> None:
        self.obj = obj
        self.version = version
        self.index_values = index_values


class _KindStore:
    __slots__ = ("entries", "indexes", "last_index", "projection", "tombstones")

    def __init__(self, spec: CachedKind) -> None:
        identity = RESOURCE_IDENTITY_FIELDS if spec.kind not in NOMAD_KINDS else NOMAD_IDENTITY_FIELDS
        self.projection = Projection((*spec.fields, *identity))
        self.indexes = spec.indexes
        self.entries: dict[ObjectKey, _Entry] = {}
        self.tombstones: dict[ObjectKey, int] = {}  # insertion-ordered: the oldest is dropped first
        self.last_index = 0


class Cache:
    """Objects by (kind, namespace, ID) for the kinds that controllers declared."""

    def __init__(
        self,
        kinds: Iterable[CachedKind],
        *,
        max_objects_per_kind: int = DEFAULT_CACHE_MAX_OBJECTS_PER_KIND,
        max_tombstones_per_kind: int = DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND,
    ) -> None:
        self.max_objects_per_kind = max_objects_per_kind
        self.max_tombstones_per_kind = max_tombstones_per_kind
        self._stores: dict[str, _KindStore] = {}
        self._index_kinds: dict[str, str] = {}
        self._index_maps: dict[str, dict[Hashable, set[ObjectKey]]] = {}
        for spec in kinds:
            if spec.kind in self._stores:
                raise ValueError(f"kind {spec.kind!r} is declared twice in the cache")
            for index in spec.indexes:
                if index.kind != spec.kind:
                    raise ValueError(f"index {index.name!r} is over {index.kind}, not {spec.kind}")
                if index.name in self._index_kinds:
                    raise ValueError(f"index name {index.name!r} is declared twice")
                self._index_kinds[index.name] = spec.kind
                self._index_maps[index.name] = {}
            self._stores[spec.kind] = _KindStore(spec)

    @classmethod
    def for_controllers(
        cls,
        controllers: Iterable[Controller],
        *,
        indexes: Iterable[CacheIndex] = DEFAULT_INDEXES,
        max_objects_per_kind: int = DEFAULT_CACHE_MAX_OBJECTS_PER_KIND,
        max_tombstones_per_kind: int = DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND,
        extra_fields: Mapping[str, Iterable[str]] | None = None,
    ) -> Cache:
        """A cache of every kind the controllers watch, each keeping the union of the fields they declared, and
        `extra_fields` of the kinds that are watched."""
        fields: dict[str, dict[str, None]] = {}
        for controller in controllers:
            for kind in controller.watched_kinds():
                fields.setdefault(kind, {}).update(dict.fromkeys(controller.fields_for(kind)))
        for kind, extra in (extra_fields or {}).items():
            if kind in fields:
                fields[kind].update(dict.fromkeys(extra))
        all_indexes = tuple(indexes)
        specs = [
            CachedKind(kind, tuple(paths), tuple(index for index in all_indexes if index.kind == kind))
            for kind, paths in fields.items()
        ]
        return cls(specs, max_objects_per_kind=max_objects_per_kind, max_tombstones_per_kind=max_tombstones_per_kind)

    # --- writes (from the informer) -----------------------------------------------------------------------------------
    def apply(self, kind: str, obj: Mapping[str, Any], *, index: int, deleted: bool = False) -> bool:
        """Apply one event's object at raft `index`. Returns False when it was stale or a duplicate, True if it changed
        the cache (so the informer enqueues only real changes)."""
        store = self._store(kind)
        key = key_of(kind, obj)
        version = _version_of(obj, fallback=index)
        store.last_index = max(store.last_index, index)
        entry = store.entries.get(key)
        if deleted:
            if entry is not None and entry.version > index:
                return False  # the object was re-created after this deletion
            self._bury(store, key, max(index, version))
            if entry is None:
                return False
            self._remove(store, key, entry)
            return True
        if entry is not None and version <= entry.version:
            return False
        if entry is None and version <= store.tombstones.get(key, -1):
            return False  # a replay of something older than the deletion we saw
        if entry is None and len(store.entries) >= self.max_objects_per_kind:
            raise CacheFull(
                f"cache of {kind} is full: max_objects_per_kind={self.max_objects_per_kind}; refusing {key}"
            )
        self._store_entry(store, key, obj, version, old=entry)
        return True

    def replace_all(self, kind: str, objects: Iterable[Mapping[str, Any]], *, index: int) -> CacheDiff:
        """Replace the kind's contents with a fresh list taken at raft `index`, and report the difference.

        Cached objects newer than the list (updated by an event after it was taken) are kept as they are.
        """
        store = self._store(kind)
        listed = {key_of(kind, obj): obj for obj in objects}
        if len(listed) > self.max_objects_per_kind:
            raise CacheFull(
                f"cache of {kind} is full: a list of {len(listed)} exceeds max_objects_per_kind="
                f"{self.max_objects_per_kind}; the cache was left unchanged"
            )
        diff = CacheDiff()
        for key, obj in listed.items():
            store.tombstones.pop(key, None)
            version = _version_of(obj, fallback=index)
            entry = store.entries.get(key)
            if entry is not None and entry.version > version:
                continue
            projected = self._store_entry(store, key, obj, version, old=entry)
            if entry is None:
                diff.added.append(key)
            elif entry.obj != projected:
                diff.changed.append(key)
        for key in [key for key in store.entries if key not in listed]:
            entry = store.entries[key]
            if entry.version <= index:
                self._remove(store, key, entry)
                self._bury(store, key, index)
                diff.removed[key] = entry.obj
        store.last_index = max(store.last_index, index)
        return diff

    # --- reads (from reconcilers) -------------------------------------------------------------------------------------
    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        entry = self._store(key.kind).entries.get(key)
        return None if entry is None else entry.obj

    def objects(self, kind: str, *, namespace: str | None = None) -> list[Mapping[str, Any]]:
        entries = self._store(kind).entries
        return [entry.obj for key, entry in entries.items() if namespace is None or key.namespace == namespace]

    def keys(self, kind: str, *, namespace: str | None = None) -> list[ObjectKey]:
        return [key for key in self._store(kind).entries if namespace is None or key.namespace == namespace]

    def by_index(self, index_name: str, value: Hashable) -> list[Mapping[str, Any]]:
        """Objects filed under `value` in the named index, e.g. `by_index("allocations-by-job", job_key)`."""
        kind = self._index_kinds.get(index_name)
        if kind is None:
            raise UncachedKind(f"no cache index named {index_name!r}; declared: {sorted(self._index_kinds)}")
        entries = self._stores[kind].entries
        return [entries[key].obj for key in self._index_maps[index_name].get(value, ())]

    def size(self, kind: str) -> int:
        return len(self._store(kind).entries)

    def sizes(self) -> dict[str, int]:
        return {kind: len(store.entries) for kind, store in self._stores.items()}

    def last_index(self, kind: str) -> int:
        """The highest raft index applied to the kind: where an informer's stream resumes."""
        return self._store(kind).last_index

    @property
    def kinds(self) -> list[str]:
        return list(self._stores)

    def projection(self, kind: str) -> Projection:
        return self._store(kind).projection

    # --- internals ----------------------------------------------------------------------------------------------------
    def _store(self, kind: str) -> _KindStore:
        store = self._stores.get(kind)
        if store is None:
            raise UncachedKind(f"the cache holds no kind {kind!r}; cached kinds: {sorted(self._stores)}")
        return store

    def _store_entry(
        self, store: _KindStore, key: ObjectKey, obj: Mapping[str, Any], version: int, *, old: _Entry | None
    ) -> dict[str, Any]:
        index_values = tuple((index.name, value) for index in store.indexes for value in index.values_of(obj))
        projected = store.projection.apply(obj)
        if old is not None and old.index_values != index_values:
            self._unindex(key, old.index_values)
        if old is None or old.index_values != index_values:
            for name, value in index_values:
                self._index_maps[name].setdefault(value, set()).add(key)
        store.entries[key] = _Entry(projected, version, index_values)
        return projected

    def _remove(self, store: _KindStore, key: ObjectKey, entry: _Entry) -> None:
        del store.entries[key]
        self._unindex(key, entry.index_values)

    def _unindex(self, key: ObjectKey, index_values: tuple[tuple[str, Hashable], ...]) -> None:
        for name, value in index_values:
            members = self._index_maps[name].get(value)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._index_maps[name][value]

    def _bury(self, store: _KindStore, key: ObjectKey, index: int) -> None:
        store.tombstones.pop(key, None)
        store.tombstones[key] = max(index, 0)
        while len(store.tombstones) > self.max_tombstones_per_kind:
            del store.tombstones[next(iter(store.tombstones))]


def _version_of(obj: Mapping[str, Any], *, fallback: int) -> int:
    """The object's own version: Nomad's ModifyIndex, or a custom resource's metadata.resourceVersion."""
    version = obj.get("ModifyIndex")
    if version is None:
        metadata = obj.get("metadata")
        if isinstance(metadata, Mapping):
            version = metadata.get("resourceVersion")
    if isinstance(version, str) and version.isdigit():
        return int(version)
    return version if isinstance(version, int) and not isinstance(version, bool) else fallback
