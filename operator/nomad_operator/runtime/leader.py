"""Leader election: exactly one replica writes to Nomad, and one that may have lost the lock stops before it ends.

Three replicas of the operator run at once (one per Raspberry Pi) so that unplugging a node loses nothing; all keep
their caches warm, but only the leader may change the cluster (DESIGN rule 2). `LeaderElector` campaigns for the lock
on a Nomad Variable (`?lock-acquire`, see `leader_backends.py`), or for a CAS lease on Nomads without locks
(`lease.py`), renews it at 0.7 of the TTL, and gives it up on shutdown.

It is also the `WriteGuard` of the Nomad client: every write asks `check_write`, which compares the monotonic clock
with the current term's deadline (`leader_timing.LeaderTerm`). The hazards handled:

- **A leader that cannot renew** (Nomad down, partitioned, slow, the event loop stalled) must stop writing before its
  lock can end on the server, even while its renew loop is stuck: the guard reads the clock itself, and a timer flips
  the published state at the deadline.
- **Renew errors are not loss.** A refused renew (409/404) ends the term at once; a failed one (timeout, 5xx) is retried
  every `renew_retry` until Nomad answers, and the term simply runs out if none succeeds in time. A renew that
  succeeds after the deadline starts a new term: the lock was still ours on the server, so nobody else led meanwhile.
- **Transitions are visible**: the `nomad_operator_is_leader` gauge, a log line for each change with the holder seen,
  listeners (`add_listener`) and `wait_for_leadership()` / `wait_for_standby()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Protocol

from nomad_operator.nomad import NomadError, NotLeader, variable_path
from nomad_operator.nomad.variables_api import VariablesAPI
from nomad_operator.runtime.conditions import format_time
from nomad_operator.runtime.leader_backends import (
    LeadershipBackend,
    LeadershipLost,
    LockUnsupported,
    NomadLockBackend,
)
from nomad_operator.runtime.leader_timing import ElectionMode, LeaderElectionConfig, LeaderTerm
from nomad_operator.runtime.lease import NomadLeaseBackend
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.runtime.ratelimit import Clock, MonotonicClock, Timer

logger = logging.getLogger(__name__)


class LeadershipListener(Protocol):
    """Told about every change of this replica's leadership (called on the event loop; must not block)."""

    def __call__(self, leading: bool, /) -> None: ...


def default_identity() -> str:
    """hostname-pid-random: unique per process even when two replicas share a host and a pid namespace."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def wall_time_now() -> str:
    return format_time(datetime.now(UTC))


class _Announcer:
    """The published leadership state: gauge, log, events and listeners, changed only through `publish`."""

    def __init__(self, identity: str, metrics: RuntimeMetrics | None) -> None:
        self.identity = identity
        self.metrics = metrics
        self.leading = False
        self.leader_event = asyncio.Event()
        self.standby_event = asyncio.Event()
        self.standby_event.set()
        self.listeners: list[LeadershipListener] = []

    def publish(self, leading: bool, *, mode: str, holder: str | None, reason: str) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        if self.metrics is not None:
            self.metrics.set_leader(leading)
        if leading:
            self.standby_event.clear()
            self.leader_event.set()
            logger.info("leader election: %s is now the leader (%s; %s)", self.identity, mode, reason)
        else:
            self.leader_event.clear()
            self.standby_event.set()
            logger.warning(
                "leader election: %s stopped leading (%s; %s); leader seen: %s", self.identity, mode, reason, holder
            )
        for listener in list(self.listeners):
            try:
                listener(leading)
            except Exception:
                logger.exception("leader election: a leadership listener failed")


class LeaderElector:
    """Campaigns, renews and releases; and refuses writes whenever this replica might not hold the lock.

    Use it as the client's write guard, and run it as a task for the process's lifetime:

        elector = LeaderElector(nomad, config=LeaderElectionConfig(), metrics=metrics)
        nomad.write_guard = elector
        task = asyncio.create_task(elector.run())   # cancel it to resign: it releases the lock
    """

    def __init__(
        self,
        nomad: VariablesAPI,
        *,
        config: LeaderElectionConfig | None = None,
        identity: str | None = None,
        metrics: RuntimeMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._nomad = nomad
        self.config = config if config is not None else LeaderElectionConfig()
        self._identity = identity or default_identity()
        self._clock = clock if clock is not None else MonotonicClock()
        self._announcer = _Announcer(self._identity, metrics)
        self._term: LeaderTerm | None = None
        self._deadline_timer: Timer | None = None
        self._backend: LeadershipBackend = self._make_backend(
            ElectionMode.LEASE if self.config.mode is ElectionMode.LEASE else ElectionMode.LOCK
        )
        self._lease_request_path = variable_path(self.config.lease_path)

    # --- what the Operator reads ---
    @property
    def identity(self) -> str:
        return self._identity

    @property
    def mode(self) -> str:
        """The backend in use, "lock" or "lease" (auto mode switches to the lease when Nomad has no locks)."""
        return self._backend.name

    @property
    def is_leader(self) -> bool:
        """True only while the current term's deadline lies ahead, whatever the renew loop is doing."""
        term = self._term
        return term is not None and term.valid_at(self._clock.now())

    @property
    def holder(self) -> str | None:
        """The leader's identity as last seen from here (None when unknown)."""
        return self._identity if self.is_leader else self._backend.holder

    @property
    def deadline(self) -> float | None:
        """Monotonic time until which this replica may write, when it holds a term."""
        return self._term.deadline if self._term is not None else None

    def add_listener(self, listener: LeadershipListener) -> None:
        self._announcer.listeners.append(listener)

    def remove_listener(self, listener: LeadershipListener) -> None:
        with contextlib.suppress(ValueError):
            self._announcer.listeners.remove(listener)

    async def wait_for_leadership(self) -> None:
        await self._announcer.leader_event.wait()

    async def wait_for_standby(self) -> None:
        await self._announcer.standby_event.wait()

    def check_write(self, method: str, path: str) -> None:
        """The WriteGuard: refuse unless this replica leads now. The lease Variable itself is exempt (it is how
        replicas elect, and every write of it is a CAS)."""
        if path == self._lease_request_path:
            return
        if not self.is_leader:
            raise NotLeader(f"{self._identity} is not the leader; refused {method} {path}")

    # --- the election loop ---
    async def run(self) -> None:
        """Campaign and hold until cancelled; on the way out stop writing first, then release the lock."""
        try:
            while True:
                await self._campaign()
                await self._hold()
        finally:
            await self._resign()

    async def _campaign(self) -> None:
        failures = 0
        while True:
            sent_at = self._clock.now()
            try:
                async with asyncio.timeout(self.config.ttl_s):
                    acquired = await self._backend.try_acquire()
            except LockUnsupported as error:
                if self.config.mode is ElectionMode.LOCK:
                    raise
                logger.warning("leader election: %s; falling back to a CAS lease on %s", error, self.config.lease_path)
                self._backend = self._make_backend(ElectionMode.LEASE)
                continue
            except (NomadError, TimeoutError) as error:
                failures += 1
                pause = min(self.config.standby_poll_s * 2 ** min(failures - 1, 10), self.config.error_backoff_max_s)
                logger.warning("leader election: cannot campaign (%s); trying again in %.2fs", _describe(error), pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            if acquired:
                self._set_term(LeaderTerm.start(sent_at, self.config), reason="acquired")
                return
            try:
                await self._backend.wait_for_change()
            except NomadError as error:
                logger.debug("leader election: waiting for the holder failed: %s", _describe(error))
                await asyncio.sleep(self.config.standby_poll_s)

    async def _hold(self) -> None:
        retrying = False
        while True:
            term = self._term
            assert term is not None
            pause = term.renew_at - self._clock.now()
            if pause > 0 and not retrying:
                await asyncio.sleep(pause)
            sent_at = self._clock.now()
            try:
                async with asyncio.timeout(self.config.renew_timeout_s):
                    await self._backend.renew()
            except LeadershipLost as lost:
                self._set_term(None, reason=str(lost))
                return
            except (NomadError, TimeoutError) as error:
                left = term.deadline - self._clock.now()
                logger.warning(
                    "leader election: renew failed (%s); %s", _describe(error),
                    f"{left:.2f}s left before writes stop" if left > 0 else "not writing until a renew succeeds",
                )  # fmt: skip
                self._publish(reason="renew failed")
                await asyncio.sleep(self.config.renew_retry_s)
                retrying = True
                continue
            retrying = False
            self._set_term(term.renewed(sent_at), reason="renewed")

    async def _resign(self) -> None:
        held = self._term is not None
        self._set_term(None, reason="shutting down")
        if not held:
            return
        try:
            async with asyncio.timeout(self.config.release_timeout):
                await self._backend.release()
            logger.info("leader election: %s released the %s", self._identity, self._backend.name)
        except (NomadError, TimeoutError) as error:
            logger.warning("leader election: release failed (%s); it ends with its TTL", _describe(error))

    # --- state ---
    def _set_term(self, term: LeaderTerm | None, *, reason: str) -> None:
        self._term = term
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if term is not None:
            self._deadline_timer = self._clock.call_at(term.deadline, lambda: self._publish(reason="deadline passed"))
        self._publish(reason=reason)

    def _publish(self, *, reason: str) -> None:
        self._announcer.publish(self.is_leader, mode=self._backend.name, holder=self._backend.holder, reason=reason)

    def _make_backend(self, mode: ElectionMode) -> LeadershipBackend:
        if mode is ElectionMode.LEASE:
            return NomadLeaseBackend(
                self._nomad, config=self.config, identity=self._identity, clock=self._clock, wall_time=wall_time_now
            )
        return NomadLockBackend(self._nomad, config=self.config, identity=self._identity, wall_time=wall_time_now)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error) or type(error).__name__
