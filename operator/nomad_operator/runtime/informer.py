"""The informer: list every watched Nomad kind, then follow the event stream, keeping the cache equal to Nomad.

Reconcilers trust the cache, so every way it could silently drift from Nomad is handled here:

- **List, then watch.** Each kind is listed page by page (`list_page_size`), each page projected into the cache as it
  arrives, so the peak is one page and not the whole list (`paged_relist`). A kind's list index is its FIRST page's
  `X-Nomad-Index`, and the stream starts after the lowest of them, so changes made while paging come by the stream.
  A replayed event at or below a kind's list index is skipped for that kind: the list already holds its effect, and
  applying it could resurrect an object that was deleted without an event (Nomad's GC of allocations and evaluations).
- **Reconnects and gaps.** Nomad silently skips events that fell out of its 100-batch buffer, so every `StreamReset`
  (reconnect, skipped oversized line) is followed by a re-list of every kind, diffed with the cache, so vanished
  objects are removed and changed ones announced. A periodic re-list catches what no event ever announces (garbage
  collection). Re-lists and batches never interleave: a re-list racing an event could resurrect a deleted object.
- **Stubs are not objects.** `/v1/jobs`, `/v1/allocations` and `/v1/nodes` answer list stubs; when the fields the
  controllers declared are not all in the stub, new or changed objects are read in full (bounded concurrency) and
  unchanged ones keep their cached copy. A stub never overwrites a full object.
- **Deletions.** `"Deleted": true` payloads (Nomad 2.0 purges) and `NodeDeregistration` remove from the cache.
- **Keys, not payloads.** The informer tells a `ChangeListener` which object changed (only real changes: duplicates
  and replays are dropped by the cache's versions); the Operator maps it through each controller's `Watch` to keys.

It never gives up: list failures and refused streams are retried with backoff, and the reason is kept for `/readyz`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from nomad_operator.nomad import (
    DEFAULT_BACKOFF,
    Backoff,
    EventBatch,
    EventStream,
    JSONObject,
    NomadClient,
    NomadError,
    NotFound,
    QueryResult,
    StreamReset,
)
from nomad_operator.nomad.defaults import DEFAULT_LIST_PAGE_SIZE as NOMAD_LIST_PAGE_SIZE
from nomad_operator.nomad.defaults import EVENT_STREAM_IDLE_TIMEOUT
from nomad_operator.runtime.cache import DEFAULT_INDEXES, Cache, CacheIndex
from nomad_operator.runtime.defaults import DEFAULT_CACHE_MAX_OBJECTS_PER_KIND, DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND
from nomad_operator.runtime.errors import CacheFull, UnidentifiableObject
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.runtime.paged_relist import PagedRelist
from nomad_operator.runtime.ratelimit import Clock, MonotonicClock
from nomad_operator.runtime.reconciler import ALL_FIELDS, NOMAD_KINDS, Controller, key_of

logger = logging.getLogger(__name__)

INFORMER_KINDS: Final = ("Job", "Allocation", "Node", "Deployment", "Evaluation")
"""The Nomad kinds an informer can follow: each is an event topic of the same name and has a list route."""
DEFAULT_RELIST_PERIOD_SECONDS: Final = 600.0
"""Every kind is re-listed this often even without a reconnect, to drop objects that Nomad's GC removed silently."""
DEFAULT_FULL_READ_CONCURRENCY: Final = 8
"""Full reads of changed objects in flight at once during a list, when the list stubs lack declared fields."""
DEFAULT_INFORMER_NAMESPACE: Final = "*"
DEFAULT_LIST_PAGE_SIZE: Final = NOMAD_LIST_PAGE_SIZE
"""Objects per list page: the peak of a list is one page of JSON and dicts, not the whole list (see `paged_relist`)."""
INDEX_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {"Allocation": ("JobID", "NodeID")}
"""Fields the default cache indexes read, kept in every projection: a cached object shows what it is indexed by."""
DELETION_EVENT_TYPES: Final[Mapping[str, frozenset[str]]] = {"Node": frozenset({"NodeDeregistration"})}
"""Event types that remove their object, besides any payload marked `"Deleted": true`."""
STUB_FIELDS: Final[Mapping[str, frozenset[str] | None]] = {
    # Fields of the list stubs that mean the same as in the full object (api-objects: JobListStub, AllocListStub,
    # NodeListStub). Left out on purpose: Job stubs' Meta (null without ?meta=true), Periodic and ParameterizedJob
    # (booleans in a stub), JobSummary (not a Job field); AllocatedResources (null without ?resources=true), JobType
    # and JobVersion (not Allocation fields); Node's Attributes, NodeResources and ReservedResources (null by default).
    "Job": frozenset({
        "CreateIndex", "Datacenters", "ID", "JobModifyIndex", "ModifyIndex", "Multiregion", "Name", "Namespace",
        "NodePool", "ParentID", "Priority", "Status", "StatusDescription", "Stop", "SubmitTime", "Type",
    }),
    "Allocation": frozenset({
        "ClientDescription", "ClientStatus", "CreateIndex", "CreateTime", "DeploymentStatus", "DesiredDescription",
        "DesiredStatus", "DesiredTransition", "EvalID", "FollowupEvalID", "ID", "JobID", "ModifyIndex", "ModifyTime",
        "Name", "Namespace", "NextAllocation", "NodeID", "NodeName", "PreemptedAllocations", "PreemptedByAllocation",
        "RescheduleTracker", "TaskGroup", "TaskStates",
    }),
    "Node": frozenset({
        "Address", "CreateIndex", "Datacenter", "Drain", "Drivers", "HostVolumes", "ID", "LastDrain", "ModifyIndex",
        "Name", "NodeClass", "NodePool", "SchedulingEligibility", "Status", "StatusDescription",
    }),
    "Deployment": None,  # lists return whole objects
    "Evaluation": None,
}  # fmt: skip
_NANOSECONDS: Final = 1_000_000_000


class ChangeListener(Protocol):
    """Told about each object that really changed (appeared, changed or vanished). `since` is the clock time of the
    change as best known, for the event-lag metric. Called on the event loop; must not block."""

    def __call__(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None: ...


# --- pure decisions ---------------------------------------------------------------------------------------------------
def needs_full_read(kind: str, paths: Iterable[str]) -> bool:
    """True when the list stubs of `kind` lack some declared field `paths` (so objects must be read one by one)."""
    stub = STUB_FIELDS.get(kind)
    if stub is None:
        return False
    roots = {path.split(".", 1)[0] for path in paths}
    return ALL_FIELDS in roots or not roots <= stub


def is_deletion(kind: str, event_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether an event removes its object: a `"Deleted": true` payload, or a deleting event type of the kind."""
    return payload.get("Deleted") is True or event_type in DELETION_EVENT_TYPES.get(kind, frozenset())


def change_time(obj: Mapping[str, Any], *, now_wall: float, now_clock: float) -> float:
    """The clock time of an object's change: its `ModifyTime` (wall-clock nanoseconds, carried by allocations,
    evaluations and deployments) mapped onto the monotonic clock, or `now_clock` when it has none. A change time in
    the future (clock skew between Nomad and us) counts as now."""
    modified = obj.get("ModifyTime")
    if type(modified) is not int or modified <= 0:
        return now_clock
    age = now_wall - modified / _NANOSECONDS
    return now_clock - age if age > 0 else now_clock


def reconnect_reason(text: str) -> str:
    """A small fixed label for a reconnect's free-text reason (metrics labels must not grow without bound)."""
    lowered = text.lower()
    if "nothing received" in lowered:
        return "silence"
    if "longer than" in lowered:
        return "oversized-line"
    if "closed" in lowered:
        return "closed"
    return "error"


def cache_for_controllers(
    controllers: Iterable[Controller],
    *,
    indexes: Iterable[CacheIndex] = DEFAULT_INDEXES,
    max_objects_per_kind: int = DEFAULT_CACHE_MAX_OBJECTS_PER_KIND,
    max_tombstones_per_kind: int = DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND,
) -> Cache:
    """The cache an informer fills: every watched kind with the union of the declared fields and the index fields."""
    return Cache.for_controllers(
        controllers, indexes=indexes, max_objects_per_kind=max_objects_per_kind,
        max_tombstones_per_kind=max_tombstones_per_kind, extra_fields=INDEX_FIELDS,
    )  # fmt: skip


# --- listing ----------------------------------------------------------------------------------------------------------
_Pager = Callable[[NomadClient, str, int], AsyncIterator[QueryResult[list[JSONObject]]]]
_Reader = Callable[[NomadClient, Mapping[str, Any]], Awaitable[QueryResult[JSONObject]]]

_PAGERS: Final[Mapping[str, _Pager]] = {
    "Job": lambda client, namespace, size: client.job_pages(namespace=namespace, per_page=size),
    "Allocation": lambda client, namespace, size: client.allocation_pages(namespace=namespace, per_page=size),
    "Node": lambda client, namespace, size: client.node_pages(per_page=size),
    "Deployment": lambda client, namespace, size: client.deployment_pages(namespace=namespace, per_page=size),
    "Evaluation": lambda client, namespace, size: client.evaluation_pages(namespace=namespace, per_page=size),
}
_READERS: Final[Mapping[str, _Reader]] = {
    "Job": lambda client, stub: client.read_job(stub["ID"], namespace=stub.get("Namespace") or "default"),
    "Allocation": lambda client, stub: client.read_allocation(stub["ID"], namespace=stub.get("Namespace") or "default"),
    "Node": lambda client, stub: client.read_node(stub["ID"]),
}


class Informer:
    """Keeps the cache's Nomad kinds equal to Nomad: list, watch, re-list on reset and periodically.

    Run it as a task (`await informer.run()` until cancelled). `synced` turns true after the first list of every
    kind; `not_ready_reason()` says why not yet. Counters (`events_received`, `events_applied`, `changes`,
    `relists`) are for benchmarks and tests.
    """

    def __init__(
        self,
        *,
        client: NomadClient,
        cache: Cache,
        kinds: Sequence[str] | None = None,
        listener: ChangeListener | None = None,
        metrics: RuntimeMetrics | None = None,
        namespace: str = DEFAULT_INFORMER_NAMESPACE,
        relist_period: float | None = DEFAULT_RELIST_PERIOD_SECONDS,
        full_read_concurrency: int = DEFAULT_FULL_READ_CONCURRENCY,
        list_page_size: int = DEFAULT_LIST_PAGE_SIZE,
        idle_timeout: float = EVENT_STREAM_IDLE_TIMEOUT,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Clock | None = None,
    ) -> None:
        chosen = tuple(kinds) if kinds is not None else tuple(kind for kind in cache.kinds if kind in NOMAD_KINDS)
        unknown = [kind for kind in chosen if kind not in INFORMER_KINDS]
        if unknown:
            raise ValueError(f"an informer follows only {', '.join(INFORMER_KINDS)}; cannot follow {unknown}")
        uncached = [kind for kind in chosen if kind not in cache.kinds]
        if uncached:
            raise ValueError(f"the cache holds no kinds {uncached}: declare them in a controller's watches")
        if relist_period is not None and relist_period <= 0:
            raise ValueError(f"relist_period must be > 0 seconds or None, got {relist_period!r}")
        if full_read_concurrency < 1:
            raise ValueError(f"full_read_concurrency must be >= 1, got {full_read_concurrency}")
        if type(list_page_size) is not int or list_page_size < 1:
            raise ValueError(f"list_page_size must be an integer >= 1, got {list_page_size!r}")
        self.client = client
        self.cache = cache
        self.kinds = chosen
        self.listener = listener
        self.metrics = metrics
        self.namespace = namespace
        self.relist_period = relist_period
        self.list_page_size = list_page_size
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self._full_reads = asyncio.Semaphore(full_read_concurrency)
        self._idle_timeout = idle_timeout
        self._backoff = backoff
        self._full_read_kinds = frozenset(
            kind for kind in chosen if needs_full_read(kind, cache.projection(kind).paths)
        )
        self._listed_at: dict[str, int] = {}
        self._synced = asyncio.Event()
        self._lock = asyncio.Lock()  # a re-list and a batch never interleave
        self._problem: str | None = "not started"
        self.stream: EventStream | None = None
        self.events_received = 0
        self.events_applied = 0
        self.changes = 0
        self.relists = 0

    # --- state for readiness ------------------------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def not_ready_reason(self) -> str | None:
        """None once every kind has been listed; otherwise what the informer is waiting for."""
        if self.synced:
            return None
        missing = [kind for kind in self.kinds if kind not in self._listed_at]
        return f"informer has not listed {', '.join(missing)} yet ({self._problem})"

    def listed_at(self, kind: str) -> int:
        """The `X-Nomad-Index` of the kind's latest list (0 before the first)."""
        return self._listed_at.get(kind, 0)

    # --- the loop -----------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """List, then watch, until cancelled. Never returns on its own."""
        resync = None
        if self.relist_period is not None:
            resync = asyncio.create_task(self._relist_periodically(), name="informer-relist")
        failures = 0
        try:
            while True:
                async with self._lock:
                    await self._relist_until_done(reason="start" if not self.synced else "stream refused")
                try:
                    await self._follow_stream()
                except NomadError as error:  # a refusal that reconnecting cannot fix by itself (400, 403, 404)
                    self._problem = f"event stream refused: {error}"
                    delay = self._backoff.delay(failures)
                    failures += 1
                    logger.error("informer: %s; listing again and reconnecting in %.2fs", self._problem, delay)
                    if self.metrics is not None:
                        self.metrics.stream_reconnected(reason="refused")
                    await asyncio.sleep(delay)
        finally:
            if resync is not None:
                resync.cancel()
            self.stream = None

    async def _follow_stream(self) -> None:
        after = min((self._listed_at[kind] for kind in self.kinds), default=0)
        stream = self.client.event_stream(
            list(self.kinds),
            after_index=after,
            namespace=self.namespace,
            idle_timeout=self._idle_timeout,
            backoff=self._backoff,
        )
        self.stream = stream
        async with stream:
            async for item in stream:
                if type(item) is EventBatch:
                    async with self._lock:
                        self.apply_batch(item)
                elif isinstance(item, StreamReset):
                    if self.metrics is not None:
                        self.metrics.stream_reconnected(reason=reconnect_reason(item.reason))
                    async with self._lock:
                        await self._relist_until_done(reason=f"stream reset: {item.reason}")

    async def _relist_periodically(self) -> None:
        assert self.relist_period is not None
        while True:
            await asyncio.sleep(self.relist_period)
            if not self.synced:
                continue
            async with self._lock:
                await self._relist_until_done(reason="periodic re-list")

    # --- applying events ----------------------------------------------------------------------------------------------
    def apply_batch(self, batch: EventBatch) -> int:
        """Apply one batch to the cache and announce the real changes; returns how many objects changed."""
        cache, listener, kinds, listed_at = self.cache, self.listener, self.kinds, self._listed_at
        now_clock, now_wall = self.clock.now(), time.time()
        changed = 0
        self.events_received += len(batch.events)
        for event in batch.events:
            kind = event.topic
            if kind not in kinds or event.index <= listed_at.get(kind, 0):
                continue  # not ours, or already in the kind's latest list
            obj = event.object
            if obj is None:
                continue
            deleted = is_deletion(kind, event.type, event.payload)
            try:
                applied = cache.apply(kind, obj, index=event.index, deleted=deleted)
            except (UnidentifiableObject, CacheFull) as error:
                logger.error("informer: %s event %s at index %d not cached: %s", kind, event.type, event.index, error)
                continue
            self.events_applied += 1
            if applied:
                changed += 1
                if listener is not None:
                    listener(kind, obj, since=change_time(obj, now_wall=now_wall, now_clock=now_clock))
        self.changes += changed
        return changed

    # --- listing ------------------------------------------------------------------------------------------------------
    async def _relist_until_done(self, *, reason: str) -> None:
        failures = 0
        while True:
            try:
                await self.relist(reason=reason)
                return
            except (NomadError, CacheFull, UnidentifiableObject) as error:
                self._problem = f"listing failed: {error}"
                delay = self._backoff.delay(failures)
                failures += 1
                logger.warning("informer: %s; retrying in %.2fs", self._problem, delay)
                await asyncio.sleep(delay)

    async def relist(self, *, reason: str = "requested") -> None:
        """List every kind and make the cache equal to the lists, announcing what appeared, changed or vanished.

        Call it only while no batch is being applied (the informer's own loop guarantees that).
        """
        logger.info("informer: listing %s (%s)", ", ".join(self.kinds), reason)
        for kind in self.kinds:
            await self._relist_kind(kind)
        self.relists += 1
        self._problem = None
        if not self._synced.is_set():
            self._synced.set()
            logger.info("informer: caches synced: %s", self.cache.sizes())
        if self.metrics is not None:
            self.metrics.record_cache_sizes(self.cache.sizes())

    async def _relist_kind(self, kind: str) -> None:
        """List the kind page by page into the cache; the stream then follows from the FIRST page's index.

        Each page is read at its own index, so an object changed after page 1 in page 1's key range is on no page;
        its event has an index above page 1's, and only a stream that starts there delivers it (`paged_relist`).
        """
        relist = PagedRelist(self.cache, kind, listener=self.listener)
        try:
            async for page in _PAGERS[kind](self.client, self.namespace, self.list_page_size):
                relist.begin_page(page.index)
                objects = await self._complete(relist, page.value) if kind in self._full_read_kinds else page.value
                relist.apply_page(objects, index=page.index, since=self.clock.now())
            self._listed_at[kind] = relist.finish(since=self.clock.now())
        finally:
            self.changes += relist.changes  # a list cut short still announced the pages it applied

    async def _complete(self, relist: PagedRelist, stubs: list[JSONObject]) -> list[JSONObject]:
        """Whole objects for the page's stubs that changed since they were cached; unchanged ones are just kept."""
        kind = relist.kind
        to_read: list[JSONObject] = []
        for stub in stubs:
            key = key_of(kind, stub)
            cached = self.cache.get(key)
            if cached is not None and cached.get("ModifyIndex") == stub.get("ModifyIndex"):
                relist.keep(key)
            else:
                to_read.append(stub)
        reader = _READERS[kind]

        async def read(stub: JSONObject) -> JSONObject | None:
            async with self._full_reads:
                try:
                    return (await reader(self.client, stub)).value
                except NotFound:
                    return None  # deleted since the page was read: leaving it out removes it

        fresh = await asyncio.gather(*(read(stub) for stub in to_read))
        return [obj for obj in fresh if obj is not None]
