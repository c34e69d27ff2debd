"""The custom-resource store: resources kept in Nomad Variables, every write a compare-and-swap, and a watch.

`resources.py` and `kinds.py` say what a resource is and what may be stored; this module does the I/O, and owns the
hazards of doing it against a shared, concurrently written store:

- **Lost updates.** Every write is `?cas=` at the ModifyIndex the decision was based on (the resource's
  `resourceVersion`); a lost race raises `ResourceConflict` carrying the resource that won, and the caller re-reads
  and decides again. Nothing here ever overwrites blindly.
- **Bad input stores nothing.** Every spec write is validated by the kind registry first (all violations listed at
  once), every status write against the status schema; oversized resources are refused before anything is sent.
- **Spec and status stay apart.** `update` bumps `generation` only when the spec changes and keeps status;
  `update_status` writes the stored spec back unchanged (the CAS proves it is the stored one) and never touches
  `generation`. A spec write that does not mention `metadata.finalizers` keeps the controllers' finalizers, so
  `apply -f` of a user's file cannot strip them.
- **Deletion honours finalizers**: `delete` only marks a resource that still has finalizers; removing the last
  finalizer of a marked resource removes it.
- **Watching without a Variables topic** (none before Nomad 2.0): `watch` runs blocking queries on
  `/v1/vars?prefix=` and compares ModifyIndexes with what it saw, so it yields each changed or deleted key; errors back
  off, and an index that goes backwards (a restored or restarted cluster) starts over from a full listing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from nomad_operator.nomad import Conflict, NomadError, NotFound
from nomad_operator.nomad.variables_api import VariablesAPI
from nomad_operator.runtime.defaults import DEFAULT_NAMESPACE, RESOURCE_VARIABLE_NAMESPACE
from nomad_operator.runtime.errors import InvalidResource, OperatorRuntimeError, UndecodableVariable
from nomad_operator.runtime.kinds import KindRegistry
from nomad_operator.runtime.reconciler import ObjectKey
from nomad_operator.runtime.resources import (
    Resource,
    add_finalizer,
    decode_document,
    encode_items,
    kind_prefix,
    may_be_removed,
    merge_spec_write,
    parse_variable_path,
    plan_delete,
    remove_finalizer,
    variable_path,
    with_status,
)

WATCH_WAIT_SECONDS: Final = 300.0
"""How long one blocking list waits for a change (Nomad's cap)."""
WATCH_BACKOFF_INITIAL_SECONDS: Final = 0.1
WATCH_BACKOFF_MAX_SECONDS: Final = 10.0
"""A watch that cannot reach Nomad tries again after 0.1 s, doubling up to 10 s."""

logger = logging.getLogger(__name__)


class ResourceNotFound(OperatorRuntimeError):
    """No resource of that kind, namespace and name is stored."""


class ResourceConflict(OperatorRuntimeError):
    """The resource changed since it was read: re-read and decide again. `current` is the winner, when known."""

    def __init__(self, message: str, *, current: Resource | None = None) -> None:
        super().__init__(message)
        self.current = current


class ResourceAlreadyExists(ResourceConflict):
    """`create` found a resource with that name already stored."""


class ApplyOutcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ResourceEvent:
    """A change seen by `watch`: the key, and whether the resource is gone (else it was created or changed)."""

    key: ObjectKey
    deleted: bool
    resource_version: int


@dataclass(frozen=True, slots=True)
class ListingDiff:
    """What changed between two listings of a prefix: paths written and paths gone, and the new known state."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    known: dict[str, int]


def diff_listing(known: Mapping[str, int], listing: Sequence[Mapping[str, Any]]) -> ListingDiff:
    """Compare a `/v1/vars` listing with the ModifyIndex last seen per path. Pure."""
    current = {str(item["Path"]): int(item.get("ModifyIndex") or 0) for item in listing if "Path" in item}
    changed = tuple(sorted(path for path, index in current.items() if known.get(path) != index))
    deleted = tuple(sorted(path for path in known if path not in current))
    return ListingDiff(changed=changed, deleted=deleted, known=current)


def next_watch_index(previous: int, returned: int) -> tuple[int, bool]:
    """The index for the next blocking list, and whether the index went backwards (reset: compare everything).

    An index of 0 would not block at all (a hot loop), so the next query asks for at least 1. Pure.
    """
    if returned < previous:
        return max(returned, 1), True
    return max(returned, 1), False


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ResourceStore:
    """Custom resources of the kinds in `kinds`, stored in Nomad Variables through `nomad`.

    Writes go through the client's write guard, so on a standby replica they raise `NotLeader`; the CLI uses a
    client without a guard.
    """

    def __init__(
        self,
        nomad: VariablesAPI,
        kinds: KindRegistry,
        *,
        variable_namespace: str = RESOURCE_VARIABLE_NAMESPACE,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._nomad = nomad
        self.kinds = kinds
        self._namespace = variable_namespace
        self._now = now

    # --- reads ---
    async def get(self, kind: str, name: str, *, namespace: str = DEFAULT_NAMESPACE) -> Resource:
        definition = self.kinds.get(kind)
        path = variable_path(definition.kind, namespace, name)
        try:
            result = await self._nomad.read_variable(path, namespace=self._namespace)
        except NotFound:
            raise ResourceNotFound(f"{definition.kind} {namespace}/{name} not found") from None
        return self._decode(result.value, path)

    async def list(self, kind: str, *, namespace: str | None = None) -> list[Resource]:
        """Every resource of `kind` (in `namespace`, or in all), by namespace and name; unreadable ones are logged."""
        definition = self.kinds.get(kind)
        prefix = kind_prefix(definition.kind) + (f"{namespace}/" if namespace is not None else "")
        listing = await self._nomad.list_variables(prefix=prefix, namespace=self._namespace)
        found: list[Resource] = []
        for item in listing.value:
            path = str(item.get("Path", ""))
            try:
                result = await self._nomad.read_variable(path, namespace=self._namespace)
                found.append(self._decode(result.value, path))
            except NotFound:
                continue  # deleted between the listing and the read
            except UndecodableVariable as error:
                logger.warning("skipping an unreadable resource: %s", error)
        return sorted(found, key=lambda resource: (resource.metadata.namespace, resource.metadata.name))

    # --- spec writes ---
    async def create(self, document: Mapping[str, Any]) -> Resource:
        """Store a new resource (CAS 0); `ResourceAlreadyExists` if one with that name exists."""
        incoming = self.kinds.parse(document)
        merged = merge_spec_write(incoming, stored=None)
        try:
            return await self._put(merged, cas=0)
        except ResourceConflict as conflict:
            raise ResourceAlreadyExists(f"{incoming.key} already exists", current=conflict.current) from None

    async def update(self, document: Mapping[str, Any]) -> Resource:
        """Replace the spec (and labels, annotations, finalizers) of a stored resource.

        With `metadata.resourceVersion` in the document, the write happens only if the resource is still at that
        version; without, at the version read just before. `generation` grows only when the spec changes.
        """
        resource, _ = await self._write_spec(document, create=False)
        return resource

    async def apply(self, document: Mapping[str, Any]) -> tuple[Resource, ApplyOutcome]:
        """Create the resource, or update it; says which, or that nothing changed (then nothing is written)."""
        return await self._write_spec(document, create=True)

    async def _write_spec(self, document: Mapping[str, Any], *, create: bool) -> tuple[Resource, ApplyOutcome]:
        incoming = self.kinds.parse(document)
        key = incoming.key
        try:
            stored = await self.get(key.kind, key.name, namespace=key.namespace)
        except ResourceNotFound:
            if not create:
                raise
            return await self.create(document), ApplyOutcome.CREATED
        wanted = incoming.metadata.resource_version
        if wanted and wanted != stored.metadata.resource_version:
            raise ResourceConflict(
                f"{key} changed: it is at resourceVersion {stored.metadata.resource_version}, the write was based on "
                f"{wanted}; read it again",
                current=stored,
            )
        metadata = document.get("metadata")
        if not (isinstance(metadata, Mapping) and "finalizers" in metadata):
            incoming = replace(incoming, metadata=replace(incoming.metadata, finalizers=stored.metadata.finalizers))
        added = set(incoming.metadata.finalizers) - set(stored.metadata.finalizers)
        if stored.deleting and added:
            raise InvalidResource(f"{key} is being deleted", [f"cannot add finalizers {sorted(added)}"])
        merged = merge_spec_write(incoming, stored=stored)
        if merged == stored:
            return stored, ApplyOutcome.UNCHANGED
        return await self._put(merged, cas=stored.metadata.resource_version), ApplyOutcome.CONFIGURED

    # --- status and finalizers (controllers) ---
    async def update_status(self, resource: Resource, status: Mapping[str, Any]) -> Resource:
        """Write `status` over `resource` as read (CAS at its resourceVersion); spec and generation untouched."""
        self.kinds.check_status(resource, status)
        return await self._put(with_status(resource, status), cas=resource.metadata.resource_version)

    async def add_finalizer(self, resource: Resource, finalizer: str) -> Resource:
        changed = add_finalizer(resource, finalizer)
        if changed is resource:
            return resource
        return await self._put(changed, cas=resource.metadata.resource_version)

    async def remove_finalizer(self, resource: Resource, finalizer: str) -> Resource | None:
        """Remove a finalizer; returns None when that removed the resource (it was marked and none are left)."""
        changed = remove_finalizer(resource, finalizer)
        if may_be_removed(changed):
            await self._remove(resource)
            return None
        if changed == resource:
            return resource
        return await self._put(changed, cas=resource.metadata.resource_version)

    async def delete(self, kind: str, name: str, *, namespace: str = DEFAULT_NAMESPACE) -> Resource | None:
        """Remove the resource, or, while it has finalizers, mark it for deletion and return it marked."""
        stored = await self.get(kind, name, namespace=namespace)
        marked = plan_delete(stored, now=self._now())
        if marked is None:
            await self._remove(stored)
            return None
        if marked is stored:
            return stored
        return await self._put(marked, cas=stored.metadata.resource_version)

    # --- watch ---
    async def watch(
        self, kind: str, *, namespace: str | None = None, wait: float = WATCH_WAIT_SECONDS
    ) -> AsyncIterator[ResourceEvent]:
        """Yield an event for every resource of `kind` that exists at the start, then for every change or deletion.

        Runs until cancelled; Nomad errors are logged and retried with backoff, never raised.
        """
        definition = self.kinds.get(kind)
        prefix = kind_prefix(definition.kind) + (f"{namespace}/" if namespace is not None else "")
        known: dict[str, int] = {}
        index = 0
        pause = WATCH_BACKOFF_INITIAL_SECONDS
        while True:
            try:
                result = await self._nomad.list_variables(
                    prefix=prefix, index=index or None, wait=wait, namespace=self._namespace
                )
            except NomadError as error:
                logger.warning("watch of %s failed (%s); retrying in %.1fs", definition.kind, error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, WATCH_BACKOFF_MAX_SECONDS)
                continue
            pause = WATCH_BACKOFF_INITIAL_SECONDS
            index, reset = next_watch_index(index, result.index)
            if reset:
                logger.info("watch of %s: Nomad's index went backwards; comparing everything again", definition.kind)
            diff = diff_listing(known, result.value)
            known = diff.known
            for path in diff.changed:
                event = self._event(definition.kind, path, deleted=False, version=known[path])
                if event is not None:
                    yield event
            for path in diff.deleted:
                event = self._event(definition.kind, path, deleted=True, version=0)
                if event is not None:
                    yield event

    # --- internals ---
    def _event(self, kind: str, path: str, *, deleted: bool, version: int) -> ResourceEvent | None:
        try:
            _, namespace, name = parse_variable_path(path)
        except UndecodableVariable:
            return None  # a Variable under the prefix that is not a resource (one level too deep, say)
        return ResourceEvent(key=ObjectKey(kind, namespace, name), deleted=deleted, resource_version=version)

    async def _put(self, resource: Resource, *, cas: int) -> Resource:
        items = encode_items(resource)
        path = variable_path(resource.kind, resource.metadata.namespace, resource.metadata.name)
        try:
            answer = await self._nomad.put_variable(path, items, cas=cas, namespace=self._namespace)
        except Conflict as conflict:
            raise ResourceConflict(
                f"{resource.key} changed since it was read (expected resourceVersion {cas}); read it again",
                current=self._decode_or_none(conflict.current, path),
            ) from None
        return self._decode(answer, path)

    async def _remove(self, resource: Resource) -> None:
        path = variable_path(resource.kind, resource.metadata.namespace, resource.metadata.name)
        try:
            await self._nomad.delete_variable(path, cas=resource.metadata.resource_version, namespace=self._namespace)
        except Conflict as conflict:
            raise ResourceConflict(
                f"{resource.key} changed since it was read; read it again",
                current=self._decode_or_none(conflict.current, path),
            ) from None

    def _decode(self, variable: Mapping[str, Any], path: str) -> Resource:
        items = variable.get("Items")
        document = decode_document(
            items if isinstance(items, Mapping) else {}, modify_index=int(variable.get("ModifyIndex") or 0), path=path
        )
        try:
            return Resource.from_dict(document)
        except (KeyError, TypeError, ValueError) as error:
            raise UndecodableVariable(f"Variable {path!r} does not hold a resource: {error!r}") from None

    def _decode_or_none(self, variable: Mapping[str, Any] | None, path: str) -> Resource | None:
        if variable is None or not variable.get("Items"):
            return None
        try:
            return self._decode(variable, path)
        except UndecodableVariable:
            return None
