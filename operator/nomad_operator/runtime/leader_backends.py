"""What an elector needs from its lock, and the lock that Nomad 1.7+ offers: `?lock-acquire` on a Variable.

The elector (`leader.py`) keeps the time and the write guard; a backend only talks to Nomad: take the lock, renew it,
give it up, and wait cheaply until it may have changed hands. Two backends exist, the Nomad lock here and the CAS lease
in `lease.py` for clusters without locks. Hazards handled here:

- **Telling "no locks on this Nomad" from a mistake.** Nomad before 1.7 ignores `?lock-acquire` and treats the call as a
  plain write (answering without a lock ID), and older or proxied servers answer 404 or 405; those switch the elector
  to the lease. A 400 about the TTL or LockDelay is our mistake and is reported, never taken as a missing feature.
- **A standby that hammers Nomad.** Every refused acquire is a request to the Nomad leader, so a standby that can see
  the lock holder (a management token sees `Lock`) blocks on the Variable until it changes (an expiry or release writes
  it); only when it cannot see the holder, or the lock sits in its LockDelay, does it poll, at `standby_poll`.
- **Losing the lock vs. failing to reach Nomad.** A 409 or 404 on renew means the lock is gone: `LeadershipLost`.
  Anything else may be a passing fault, and the elector retries until its deadline says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nomad_operator.nomad import APIError, BadRequest, Conflict, NotFound, lock_id_of
from nomad_operator.nomad.variables_api import VariablesAPI
from nomad_operator.runtime.errors import OperatorRuntimeError
from nomad_operator.runtime.leader_timing import LeaderElectionConfig

HOLDER_ITEM = "holder"
"""The Variable item naming the replica that holds the lock or lease."""
ACQUIRED_AT_ITEM = "acquired_at"
"""The Variable item with the wall-clock time (RFC 3339) the holder took it: for people, never for decisions."""

_CONFIG_MISTAKE_MARKERS = ("ttl", "lockdelay", "lock delay", "negative")


class LockUnsupported(OperatorRuntimeError):
    """This Nomad has no Variable locks (before 1.7): use the lease (`mode=lease`, or `auto` switches by itself)."""


class LeadershipLost(OperatorRuntimeError):
    """Nomad says the lock or lease is no longer ours (taken over, expired, deleted)."""


class LeadershipBackend(Protocol):
    """Nomad-side operations of one election; the elector measures time around them."""

    @property
    def name(self) -> str: ...

    @property
    def holder(self) -> str | None:
        """The identity of the holder as last seen (None when unknown or free)."""
        ...

    async def try_acquire(self) -> bool:
        """Take the lock or lease if free: True when taken, False when someone else has it.
        Raises `LockUnsupported` when this Nomad lacks the feature, `NomadError` on other failures."""
        ...

    async def renew(self) -> None:
        """Extend what we hold; `LeadershipLost` when it is no longer ours."""
        ...

    async def release(self) -> None:
        """Give it up at once (best effort: errors are the caller's to log)."""
        ...

    async def wait_for_change(self) -> None:
        """Return when the holder may have changed, or after a bounded wait."""
        ...


def lock_feature_missing(error: APIError) -> bool:
    """Whether an error answer to `?lock-acquire` shows that this Nomad has no Variable locks."""
    if isinstance(error, NotFound) or error.status == 405:
        return True
    if isinstance(error, BadRequest):
        lowered = error.message.lower()
        return not any(marker in lowered for marker in _CONFIG_MISTAKE_MARKERS)
    return False


def holder_items(identity: str, acquired_at: str) -> dict[str, str]:
    return {HOLDER_ITEM: identity, ACQUIRED_AT_ITEM: acquired_at}


def holder_of(variable: Mapping[str, Any] | None) -> str | None:
    """The holder named in a Variable's items, when they are visible."""
    if variable is None:
        return None
    items = variable.get("Items")
    holder = items.get(HOLDER_ITEM) if isinstance(items, Mapping) else None
    return holder if isinstance(holder, str) and holder else None


class NomadLockBackend:
    """Leadership as the lock on one Nomad Variable (`?lock-acquire`, `?lock-renew`, `?lock-release`)."""

    name = "lock"

    def __init__(
        self,
        nomad: VariablesAPI,
        *,
        config: LeaderElectionConfig,
        identity: str,
        wall_time: Callable[[], str],
    ) -> None:
        self._nomad = nomad
        self._config = config
        self._identity = identity
        self._wall_time = wall_time
        self._lock_id: str | None = None
        self._holder: str | None = None
        self._seen_index = 0
        self._seen_locked = False

    @property
    def holder(self) -> str | None:
        return self._identity if self._lock_id is not None else self._holder

    async def try_acquire(self) -> bool:
        config = self._config
        try:
            answer = await self._nomad.lock_acquire(
                config.path,
                ttl=config.ttl,
                lock_delay=config.lock_delay,
                items=holder_items(self._identity, self._wall_time()),
                namespace=config.namespace,
            )
        except Conflict as conflict:
            self._observe(conflict.current)
            return False
        except APIError as error:
            if lock_feature_missing(error):
                raise LockUnsupported(f"Nomad answered {error.status} to lock-acquire: {error.message}") from error
            raise
        lock_id = lock_id_of(answer)
        if lock_id is None:
            raise LockUnsupported(
                "Nomad accepted lock-acquire but returned no lock ID: it has no Variable locks (added in Nomad 1.7)"
            )
        self._lock_id = lock_id
        self._holder = self._identity
        self._seen_index = int(answer.get("ModifyIndex") or 0)
        return True

    async def renew(self) -> None:
        if self._lock_id is None:
            raise LeadershipLost("no lock is held")
        try:
            await self._nomad.lock_renew(self._config.path, self._lock_id, namespace=self._config.namespace)
        except (Conflict, NotFound) as error:
            self._lock_id = None
            self._holder = None
            raise LeadershipLost(f"the lock on {self._config.path} is no longer ours: {error.message}") from error

    async def release(self) -> None:
        lock_id, self._lock_id = self._lock_id, None
        self._holder = None
        if lock_id is None:
            return
        # A 409 or 404 means it already expired or was taken: nothing of ours is left to give up.
        with contextlib.suppress(Conflict, NotFound):
            await self._nomad.lock_release(self._config.path, lock_id, namespace=self._config.namespace)

    async def wait_for_change(self) -> None:
        if not (self._seen_locked and self._seen_index > 0):
            await asyncio.sleep(self._config.standby_poll_s)
            return
        try:
            result = await self._nomad.read_variable(
                self._config.path, index=self._seen_index, wait=self._config.ttl_s, namespace=self._config.namespace
            )
        except NotFound:
            self._seen_locked = False
            return
        self._observe(result.value)

    def _observe(self, variable: Mapping[str, Any] | None) -> None:
        """Remember what a 409 or a read showed: who holds the lock, and the index to block on."""
        if variable is None:
            self._seen_locked = False
            return
        self._seen_index = int(variable.get("ModifyIndex") or 0)
        self._seen_locked = lock_id_of(variable) is not None
        self._holder = holder_of(variable) if self._seen_locked else None
