"""Example controller: recycle a job's allocations once they are older than its `max-alloc-age` meta.

Long-running tasks that leak memory or hold stale DNS are often "fixed" by a cron job that restarts everything at
once. This controller does it gently and level-based: for each job whose meta sets
`nomad-operator.example/max-alloc-age` (a Go duration such as "12h"), it stops the running allocations older than
that, and asks to look again when the next one comes of age; Nomad's scheduler places the replacements. Nothing it
does depends on seeing a particular event: a reconcile reads the job and its allocations from the cache and
converges, so a missed event, a restart of the operator, or a change of leader loses nothing.

It shows the framework's pieces in ~100 lines: a `Controller` with two `Watch`es (the job, and its allocations
mapped back to the job), projected fields, the allocations-by-job index, `Result(requeue_after=...)`, and a
`TerminalError` for a meta value that retrying cannot fix.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from nomad_operator.durations import InvalidDuration, parse_duration, to_seconds
from nomad_operator.nomad import NomadClient, NotFound
from nomad_operator.runtime import (
    ALLOCATIONS_BY_JOB,
    Cache,
    Controller,
    ObjectKey,
    Result,
    TerminalError,
    Watch,
    job_of_allocation,
)

MAX_AGE_META: Final = "nomad-operator.example/max-alloc-age"
LIVE_CLIENT_STATUSES: Final = frozenset({"pending", "running"})
_NANOSECONDS: Final = 1_000_000_000


def max_age_seconds(meta: Mapping[str, Any] | None) -> float | None:
    """The job's maximum allocation age in seconds, None when unset; `TerminalError` when it is not a duration."""
    text = (meta or {}).get(MAX_AGE_META)
    if text is None:
        return None
    try:
        age = to_seconds(parse_duration(str(text)))
    except InvalidDuration as error:
        message = f"meta {MAX_AGE_META}={text!r} is not a duration: {error}"
        raise TerminalError(message, reason="InvalidMaxAge") from None
    if age <= 0:
        raise TerminalError(f"meta {MAX_AGE_META}={text!r} must be positive", reason="InvalidMaxAge")
    return age


def plan_recycling(
    allocations: Iterable[Mapping[str, Any]], *, max_age: float, now: float
) -> tuple[list[str], float | None]:
    """Pure decision: the IDs of live allocations older than `max_age`, and the seconds until the next one is."""
    expired: list[str] = []
    next_due: float | None = None
    for alloc in allocations:
        being_replaced = (alloc.get("DesiredTransition") or {}).get("Migrate") is True
        if alloc.get("DesiredStatus") != "run" or alloc.get("ClientStatus") not in LIVE_CLIENT_STATUSES:
            continue
        if being_replaced:
            continue
        due_in = alloc.get("CreateTime", 0) / _NANOSECONDS + max_age - now
        if due_in <= 0:
            expired.append(alloc["ID"])
        elif next_due is None or due_in < next_due:
            next_due = due_in
    return sorted(expired), next_due


class RecycleOldAllocations:
    """The reconciler. Give it the client (writes) now and the operator's cache (reads) once the Operator exists."""

    def __init__(self, *, nomad: NomadClient) -> None:
        self.nomad = nomad
        self.cache: Cache | None = None
        self.stopped: list[str] = []

    def controller(self) -> Controller:
        return Controller(
            "recycle-old-allocs",
            reconcile=self.reconcile,
            watches=[
                Watch("Job", fields=("Meta", "Stop")),
                Watch(
                    "Allocation",
                    map_to=job_of_allocation,
                    fields=("JobID", "ClientStatus", "DesiredStatus", "DesiredTransition", "CreateTime"),
                ),
            ],
        )

    def use_cache(self, cache: Cache) -> None:
        self.cache = cache

    async def reconcile(self, key: ObjectKey) -> Result:
        if self.cache is None:
            raise RuntimeError("call use_cache(operator.cache) before the operator starts")
        job = self.cache.get(key)
        if job is None or job.get("Stop"):
            return Result()
        max_age = max_age_seconds(job.get("Meta"))
        if max_age is None:
            return Result()
        allocations = self.cache.by_index(ALLOCATIONS_BY_JOB.name, key)
        expired, next_due = plan_recycling(allocations, max_age=max_age, now=time.time())
        for alloc_id in expired:
            try:
                await self.nomad.stop_allocation(alloc_id, namespace=key.namespace)
            except NotFound:
                continue  # already gone: nothing to recycle
            self.stopped.append(alloc_id)
        return Result(requeue_after=next_due)
