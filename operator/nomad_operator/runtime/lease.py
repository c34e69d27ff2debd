"""The fallback for Nomad before 1.7, which has no Variable locks: a lease kept in a Variable with compare-and-swap.

The lease Variable names its holder and the holder's own TTL; the holder renews by rewriting it with `?cas=` at the
index of its last write, so a renew after a takeover fails instead of overwriting it. The hazard is time: no server
expires a lease, and two machines' wall clocks cannot be compared. So, as Kubernetes' client-go does, nobody reads a
time out of the Variable to decide anything. A standby notes, on its own monotonic clock, when it first saw the
Variable's current ModifyIndex, and may take over only when that index has not moved for the holder's TTL plus the
safety margin. The holder stops writing at (send time of its last successful renew) + TTL - margin, which is before
any standby first saw that renew, so between the last write of one holder and the first of the next lie at least two
margins. A released lease (empty holder) or an absent Variable may be taken at once.

Every write of the lease is itself a CAS write through the Nomad client, so the elector's write guard lets the lease
path through (leader election is what feeds the guard).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from nomad_operator.nomad import Conflict, NotFound
from nomad_operator.nomad.variables_api import VariablesAPI
from nomad_operator.runtime.leader_backends import ACQUIRED_AT_ITEM, HOLDER_ITEM, LeadershipLost, holder_of
from nomad_operator.runtime.leader_timing import LeaderElectionConfig
from nomad_operator.runtime.ratelimit import Clock

TTL_ITEM: Final = "ttl_seconds"
"""The holder's own TTL in seconds: a standby waits for the holder's TTL, not its own."""
RENEWED_AT_ITEM: Final = "renewed_at"
"""Wall-clock time of the last renew (RFC 3339): for people reading the Variable, never used to decide."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What the lease Variable says: who holds it ("" once released) and for how long a silence ends it."""

    holder: str
    ttl: float

    @classmethod
    def from_items(cls, items: Mapping[str, Any] | None, *, fallback_ttl: float) -> LeaseRecord:
        """Read the record; a damaged one counts as held by an unknown holder with `fallback_ttl`, never as free."""
        if not isinstance(items, Mapping):
            return cls(holder="?", ttl=fallback_ttl)
        holder = items.get(HOLDER_ITEM)
        try:
            ttl = float(items.get(TTL_ITEM, ""))
        except ValueError:
            ttl = fallback_ttl
        if not ttl > 0:
            ttl = fallback_ttl
        return cls(holder=holder if isinstance(holder, str) else "?", ttl=ttl)

    def to_items(self, *, acquired_at: str, renewed_at: str) -> dict[str, str]:
        return {
            HOLDER_ITEM: self.holder,
            TTL_ITEM: f"{self.ttl:g}",
            ACQUIRED_AT_ITEM: acquired_at,
            RENEWED_AT_ITEM: renewed_at,
        }


@dataclass(frozen=True, slots=True)
class LeaseObservation:
    """The lease Variable as a standby saw it: its ModifyIndex (0 = absent), record, and when this index was first
    seen on the standby's monotonic clock."""

    modify_index: int
    record: LeaseRecord | None
    first_seen: float


def observe(
    previous: LeaseObservation | None, *, modify_index: int, record: LeaseRecord | None, now: float
) -> LeaseObservation:
    """The observation after a read: unchanged index keeps its first-seen time, a new index restarts the count."""
    if previous is not None and previous.modify_index == modify_index:
        return previous
    return LeaseObservation(modify_index=modify_index, record=record, first_seen=now)


def may_take_over(
    observation: LeaseObservation, *, identity: str, now: float, margin: float, time_scale: float
) -> bool:
    """Whether `identity` may write the lease now: it is absent, released, ours, or silent for its TTL plus margin."""
    record = observation.record
    if record is None or record.holder in ("", identity):
        return True
    return now >= observation.first_seen + record.ttl * time_scale + margin


class NomadLeaseBackend:
    """Leadership as a lease in a Nomad Variable, every write a CAS."""

    name = "lease"

    def __init__(
        self,
        nomad: VariablesAPI,
        *,
        config: LeaderElectionConfig,
        identity: str,
        clock: Clock,
        wall_time: Callable[[], str],
    ) -> None:
        self._nomad = nomad
        self._config = config
        self._identity = identity
        self._clock = clock
        self._wall_time = wall_time
        self._observation: LeaseObservation | None = None
        self._held_index: int | None = None
        self._acquired_at = ""

    @property
    def holder(self) -> str | None:
        if self._held_index is not None:
            return self._identity
        record = self._observation.record if self._observation is not None else None
        return record.holder if record is not None and record.holder not in ("", "?") else None

    async def try_acquire(self) -> bool:
        config = self._config
        try:
            result = await self._nomad.read_variable(config.lease_path, namespace=config.namespace)
            self._see(result.value)
        except NotFound:
            self._observation = observe(self._observation, modify_index=0, record=None, now=self._clock.now())
        observation = self._observation
        assert observation is not None
        if not may_take_over(
            observation,
            identity=self._identity,
            now=self._clock.now(),
            margin=config.margin_s,
            time_scale=config.time_scale,
        ):
            return False
        self._acquired_at = self._wall_time()
        try:
            answer = await self._write(cas=observation.modify_index)
        except Conflict as conflict:
            self._see(conflict.current)
            return False
        self._held_index = int(answer.get("ModifyIndex") or 0)
        return True

    async def renew(self) -> None:
        if self._held_index is None:
            raise LeadershipLost("no lease is held")
        try:
            answer = await self._write(cas=self._held_index)
        except Conflict as conflict:
            current = conflict.current
            # A renew whose answer was lost (and retried) moved the index itself: the record still names us, and
            # nobody else can have written in between, since a takeover writes its own name.
            if holder_of(current) != self._identity or current is None:
                self._held_index = None
                self._see(current)
                raise LeadershipLost(f"the lease {self._config.lease_path} was taken over") from conflict
            answer = await self._write(cas=int(current.get("ModifyIndex") or 0))
        self._held_index = int(answer.get("ModifyIndex") or 0)

    async def release(self) -> None:
        index, self._held_index = self._held_index, None
        if index is None:
            return
        record = LeaseRecord(holder="", ttl=self._config.ttl)
        items = record.to_items(acquired_at=self._acquired_at, renewed_at=self._wall_time())
        # A 409 means it was taken over meanwhile: nothing of ours is left to give up.
        with contextlib.suppress(Conflict):
            await self._nomad.put_variable(self._config.lease_path, items, cas=index, namespace=self._config.namespace)

    async def wait_for_change(self) -> None:
        config = self._config
        index = self._observation.modify_index if self._observation is not None else 0
        try:
            result = await self._nomad.read_variable(
                config.lease_path, index=max(index, 1), wait=config.standby_poll_s, namespace=config.namespace
            )
        except NotFound:
            self._observation = observe(self._observation, modify_index=0, record=None, now=self._clock.now())
            return
        self._see(result.value)

    async def _write(self, *, cas: int) -> dict[str, Any]:
        record = LeaseRecord(holder=self._identity, ttl=self._config.ttl)
        items = record.to_items(acquired_at=self._acquired_at, renewed_at=self._wall_time())
        return await self._nomad.put_variable(self._config.lease_path, items, cas=cas, namespace=self._config.namespace)

    def _see(self, variable: Mapping[str, Any] | None) -> None:
        if variable is None:
            return
        index = int(variable.get("ModifyIndex") or 0)
        items = variable.get("Items")
        # A 409 body without Items (no read permission) tells the index but not the holder: treat it as held.
        record = LeaseRecord.from_items(items, fallback_ttl=self._config.ttl)
        self._observation = observe(self._observation, modify_index=index, record=record, now=self._clock.now())
