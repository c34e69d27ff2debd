"""Resource mode: every GitSource resource in the ResourceStore gets a source loop, and its status written back.

`nomad-operator run` without `--repo` serves the GitSources people `apply`. The store's `watch` says which resource
changed; the resource is read again (level-based) and its loop is started, replaced when the spec changes (a new
`generation`), woken when only `requestedAt` changed, and stopped when the resource goes. The hazards:
- **Deleting a source must never leave a loop writing for it.** The leader puts a finalizer on each resource; a
  delete then only marks it, every replica stops its loop, and the leader removes the finalizer once its own loop has
  stopped, which lets the store remove the resource. Jobs stay unless the source's prune says otherwise: a deleted
  source prunes nothing (rule 4).
- **Status writes race spec writes and each other.** The status is written with `update_status` (CAS at the
  resourceVersion it read); a conflict re-reads and writes again, a bounded number of times. Only the leader writes
  (a standby's status stays in its `/status`), and a cycle that changed nothing but the time writes nothing (rule 5).
- **A bad spec or credential** is reported on the resource as Stalled, with every problem named, and starts no loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from nomad_operator.controllers.gitops.git_errors import GitSourceError
from nomad_operator.controllers.gitops.gitauth import GitAuth
from nomad_operator.controllers.gitops.source_set import ServedSource, SourceSet
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec, SourceSpecError, spec_from_resource
from nomad_operator.controllers.gitops.source_status import Phase, SourceStatus
from nomad_operator.controllers.gitops.source_sync import GitSourceSync, LeaderCheck, StatusSink
from nomad_operator.nomad import NomadError, NotLeader
from nomad_operator.runtime.errors import OperatorRuntimeError
from nomad_operator.runtime.reconciler import ObjectKey
from nomad_operator.runtime.resource_store import ResourceConflict, ResourceNotFound, ResourceStore
from nomad_operator.runtime.resources import Resource
from nomad_operator.server.webhooks import SecretGetter

log = logging.getLogger(__name__)

GITSOURCE_KIND: Final = "GitSource"
FINALIZER: Final = "gitops.nomad-operator.io/source-loop"
STATUS_WRITE_ATTEMPTS: Final = 3
RETRY_AFTER_NOMAD_ERROR_SECONDS: Final = 5.0
NULLABLE_STATUS_FIELDS: Final = frozenset({"lastError"})
VOLATILE_STATUS_FIELDS: Final = frozenset({"updatedAt", "history"})
QUIET_RESULTS: Final = frozenset({"NoChange", "Standby", "Suspended"})


class SourceFactory(Protocol):
    """Builds the sync of one source (the assembly knows the client, cache, loader and workdir)."""

    def __call__(
        self, spec: GitSourceSpec, *, generation: int, sink: StatusSink, auth: GitAuth
    ) -> GitSourceSync: ...


class SecretResolver(Protocol):
    async def git_auth(self, spec: GitSourceSpec) -> GitAuth: ...

    def webhook_secret(self, spec: GitSourceSpec) -> SecretGetter: ...


def status_for_resource(document: Mapping[str, Any]) -> dict[str, Any]:
    """The status document as the GitSource schema takes it: absent values left out rather than null."""
    return {key: value for key, value in document.items() if value is not None or key in NULLABLE_STATUS_FIELDS}


def _quiet_change(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """True when `after` differs from `before` only by the time and a history entry of a cycle that changed nothing."""
    if before is None:
        return False
    if {k: v for k, v in before.items() if k not in VOLATILE_STATUS_FIELDS} != {
        k: v for k, v in after.items() if k not in VOLATILE_STATUS_FIELDS
    }:
        return False
    history = after.get("history") or []
    return not history or history == before.get("history") or history[0].get("result") in QUIET_RESULTS


class ResourceStatusSink:
    """Writes a source's status onto its resource (leader only, CAS, nothing when nothing changed)."""

    def __init__(self, store: ResourceStore, key: ObjectKey, *, is_leader: LeaderCheck) -> None:
        self._store = store
        self._key = key
        self._is_leader = is_leader
        self._resource: Resource | None = None
        self._written: dict[str, Any] | None = None
        self.writes = 0

    async def write_status(self, source: str, document: dict[str, Any]) -> None:
        if not self._is_leader():
            return
        status = status_for_resource(document)
        if _quiet_change(self._written, status):
            return
        for _ in range(STATUS_WRITE_ATTEMPTS):
            try:
                resource = self._resource or await self._store.get(
                    self._key.kind, self._key.name, namespace=self._key.namespace
                )
                self._resource = await self._store.update_status(resource, status)
                self._written = status
                self.writes += 1
                return
            except ResourceConflict as conflict:
                self._resource = conflict.current  # re-read (or use the winner) and write again
            except (ResourceNotFound, NotLeader):
                return
        log.warning("%s: status not written: it kept changing under us; the next cycle writes again", source)


class GitSourceResources:
    """Keeps one source loop per GitSource resource, following the store's watch."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        sources: SourceSet,
        factory: SourceFactory,
        secrets: SecretResolver,
        is_leader: LeaderCheck,
    ) -> None:
        self._store = store
        self._sources = sources
        self._factory = factory
        self._secrets = secrets
        self._is_leader = is_leader
        self._seen: dict[str, tuple[int, dict[str, Any]]] = {}  # source id -> (generation, spec without requestedAt)
        self._retries: dict[ObjectKey, asyncio.Task[None]] = {}

    async def run(self) -> None:
        async for event in self._store.watch(GITSOURCE_KIND):
            await self.handle(event.key)

    async def resync(self) -> None:
        """Look at every resource again (on a new leadership term: finalizers and status are the leader's job)."""
        try:
            resources = await self._store.list(GITSOURCE_KIND)
        except NomadError as exc:
            log.warning("cannot list GitSources: %s", exc)
            return
        for resource in resources:
            await self.handle(resource.key)

    async def handle(self, key: ObjectKey) -> None:
        source = f"{key.namespace}/{key.name}"
        try:
            resource = await self._store.get(GITSOURCE_KIND, key.name, namespace=key.namespace)
        except ResourceNotFound:
            await self._stop(source, why="its resource is gone")
            return
        except (NomadError, OperatorRuntimeError) as exc:
            log.warning("cannot read GitSource %s: %s; trying again", source, exc)
            self._retry_later(key)
            return
        if resource.deleting:
            await self._stop(source, why="its resource is being deleted")
            await self._release(resource)
            return
        resource = await self._hold(resource)
        try:
            spec = spec_from_resource(name=key.name, namespace=key.namespace, spec=resource.spec)
        except SourceSpecError as exc:
            await self._stop(source, why="its spec is invalid")
            await self._stalled(resource, "InvalidSpec", str(exc))
            return
        comparable = {k: v for k, v in resource.spec.items() if k != "requestedAt"}
        generation = resource.metadata.generation
        seen = self._seen.get(source)
        served = self._sources.get(source)
        if served is not None and seen is not None:
            if seen == (generation, comparable):
                return
            if seen[1] == comparable:  # only requestedAt moved: fetch now, keep the loop
                self._seen[source] = (generation, comparable)
                served.sync.generation = generation
                served.sync.request(reason="requested")
                return
        try:
            auth = await self._secrets.git_auth(spec)
        except GitSourceError as exc:
            await self._stop(source, why="its credentials cannot work")
            await self._stalled(resource, "InvalidSource", str(exc))
            return
        except NomadError as exc:
            log.warning("GitSource %s: cannot read its credentials: %s; trying again", source, exc)
            self._retry_later(key)
            return
        await self._stop(source, why="its spec changed")
        sink = ResourceStatusSink(self._store, key, is_leader=self._is_leader)
        sync = self._factory(spec, generation=generation, sink=sink, auth=auth)
        self._sources.add(ServedSource(sync=sync, secret=self._secrets.webhook_secret(spec)))
        self._seen[source] = (generation, comparable)
        log.info("GitSource %s: serving %s at %s (generation %d)", source, spec.url.split("@")[-1], spec.ref,
                 generation)  # fmt: skip

    async def stop(self) -> None:
        for task in self._retries.values():
            task.cancel()
        await asyncio.gather(*self._retries.values(), return_exceptions=True)
        self._retries.clear()

    # --- internals --------------------------------------------------------------------------------------------
    async def _stop(self, source: str, *, why: str) -> None:
        self._seen.pop(source, None)
        if await self._sources.remove(source) is not None:
            log.info("GitSource %s: loop stopped: %s", source, why)

    async def _hold(self, resource: Resource) -> Resource:
        """The leader puts the finalizer on, so a delete waits for the loop to stop."""
        if not self._is_leader() or FINALIZER in resource.metadata.finalizers:
            return resource
        try:
            return await self._store.add_finalizer(resource, FINALIZER)
        except (ResourceConflict, NotLeader, NomadError, OperatorRuntimeError) as exc:
            log.info("GitSource %s: finalizer not added yet (%s)", resource.key, exc)
            return resource

    async def _release(self, resource: Resource) -> None:
        if not self._is_leader() or FINALIZER not in resource.metadata.finalizers:
            return
        try:
            await self._store.remove_finalizer(resource, FINALIZER)
            log.info("GitSource %s: finalizer removed; the store may remove it", resource.key)
        except (ResourceConflict, NotLeader, NomadError, OperatorRuntimeError) as exc:
            log.info("GitSource %s: finalizer not removed yet (%s); trying again", resource.key, exc)
            self._retry_later(resource.key)

    async def _stalled(self, resource: Resource, reason: str, message: str) -> None:
        if not self._is_leader():
            return
        status = SourceStatus(phase=Phase.STALLED, reason=reason, message=message, last_error=message)
        document = status.to_document(previous=resource.status, generation=resource.metadata.generation,
                                      now=datetime.now(UTC))  # fmt: skip
        sink = ResourceStatusSink(self._store, resource.key, is_leader=self._is_leader)
        await sink.write_status(str(resource.key), document)

    def _retry_later(self, key: ObjectKey) -> None:
        if key in self._retries and not self._retries[key].done():
            return

        async def again() -> None:
            await asyncio.sleep(RETRY_AFTER_NOMAD_ERROR_SECONDS)
            self._retries.pop(key, None)
            await self.handle(key)

        self._retries[key] = asyncio.create_task(again(), name=f"gitsource-retry-{key}")
