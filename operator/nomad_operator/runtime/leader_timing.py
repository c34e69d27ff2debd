"""The timing of leader election: its settings, and the local deadline after which a leader must stop writing.

The one hazard that matters is two writers. Nomad ends a lock when its TTL runs out on the *server*, and nobody tells
the old holder: a leader that is partitioned, stuck in a slow renew or paused keeps believing it leads. So a leader
here never trusts the server's view; it keeps its own deadline

    deadline = (monotonic time when the last successful renew was SENT) + TTL - safety margin

The server armed its TTL timer when the renew *arrived*, which is after it was sent, so the local deadline always falls
at least `safety margin` before the server can drop the lock; Nomad then refuses the lock to everyone for LockDelay.
A write that passed the guard just before the deadline therefore has `margin + LockDelay` to land before any other
replica can possibly lead. The write guard compares the clock with this deadline on every write, so it refuses even
when the renew loop itself is stuck.

Choosing LockDelay: the issue's target is "after SIGKILL of the leader the standby leads within TTL + 5 s". The worst
case is a leader killed right after a renew: its lock ends TTL later, Nomad then blocks it for LockDelay, and the
standby notices within one standby poll. So `LockDelay + standby poll` must stay under 5 s; 3 s + 1 s leaves a second
for round trips, and gives in-flight writes 3 s + 1.5 s (the margin at TTL 15 s) to land. Nomad's own default of 15 s
would miss the target by 10 s.

All of this is pure: times are plain floats from an injected monotonic clock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from nomad_operator.nomad.defaults import LOCK_MAX_TTL, LOCK_MIN_TTL

DEFAULT_LEADER_PATH: Final = "nomad-operator/leader"
"""The Variable whose lock elects the leader."""
DEFAULT_LEASE_PATH: Final = "nomad-operator/leader-lease"
"""The Variable of the CAS lease used when Nomad has no locks (before 1.7). A different path from the lock, so that a
lock-acquire sent to an old Nomad (which ignores `?lock-acquire` and writes the Items) can never clobber a lease."""
DEFAULT_LEADER_TTL: Final = 15.0
"""Seconds a lock lives without a renew (Nomad's default; Nomad accepts 10 s to 24 h)."""
DEFAULT_LOCK_DELAY: Final = 3.0
"""Seconds Nomad refuses the lock to everyone after it expired; see the module docstring for why 3 s."""
DEFAULT_RENEW_FRACTION: Final = 0.7
"""Renew when this share of the TTL has passed since the last successful renew was sent."""
DEFAULT_SAFETY_MARGIN_FRACTION: Final = 0.1
"""Stop writing this share of the TTL before the lock can end on the server (covers clock-rate drift)."""
DEFAULT_RENEW_RETRY_FRACTION: Final = 0.05
"""After a failed renew, try again after this share of the TTL (0.75 s at 15 s): several tries fit before the
deadline."""
DEFAULT_RENEW_TIMEOUT_FRACTION: Final = 0.25
"""One renew request may take this share of the TTL before it is abandoned and tried again."""
DEFAULT_STANDBY_POLL: Final = 1.0
"""Seconds between a standby's tries while it cannot see who holds the lock (lock delay, or no management token)."""
DEFAULT_RELEASE_TIMEOUT: Final = 2.0
"""Seconds a shutting-down leader waits for its release to be acknowledged before it just leaves."""
DEFAULT_ERROR_BACKOFF_MAX: Final = 10.0
"""Cap of the pause between tries of a standby that cannot reach Nomad."""

ENV_PREFIX: Final = "NOMAD_OPERATOR_LEADER_"


class ElectionMode(StrEnum):
    """How replicas elect: Nomad's variable lock, the CAS lease, or the lock when Nomad has it (1.7+)."""

    AUTO = "auto"
    LOCK = "lock"
    LEASE = "lease"


class ElectionSettingsError(ValueError):
    """Leader-election settings that cannot work; the message names the setting."""


@dataclass(frozen=True, kw_only=True)
class LeaderElectionConfig:
    """Every setting of leader election, in Nomad's seconds; the `*_s` properties are the real seconds to wait.

    `time_scale` is for the simulator only: its `lock_time_scale` runs Nomad's lock timers that much faster (TTLs
    below Nomad's 10 s are refused on the wire), and the elector must scale its own schedule and deadline to match.
    On a real cluster it is 1.
    """

    path: str = DEFAULT_LEADER_PATH
    lease_path: str = DEFAULT_LEASE_PATH
    namespace: str = "default"
    mode: ElectionMode = ElectionMode.AUTO
    ttl: float = DEFAULT_LEADER_TTL
    lock_delay: float = DEFAULT_LOCK_DELAY
    renew_fraction: float = DEFAULT_RENEW_FRACTION
    safety_margin_fraction: float = DEFAULT_SAFETY_MARGIN_FRACTION
    renew_retry_fraction: float = DEFAULT_RENEW_RETRY_FRACTION
    renew_timeout_fraction: float = DEFAULT_RENEW_TIMEOUT_FRACTION
    standby_poll: float = DEFAULT_STANDBY_POLL
    release_timeout: float = DEFAULT_RELEASE_TIMEOUT
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not LOCK_MIN_TTL <= self.ttl <= LOCK_MAX_TTL:
            problems.append(
                f"ttl must be between {LOCK_MIN_TTL:g}s and {LOCK_MAX_TTL:g}s (Nomad's bounds), got {self.ttl:g}"
            )
        if self.lock_delay < 0:
            problems.append(f"lock_delay must not be negative, got {self.lock_delay:g}")
        if not 0 < self.safety_margin_fraction < 0.5:
            problems.append(f"safety_margin_fraction must be in (0, 0.5), got {self.safety_margin_fraction:g}")
        if not 0 < self.renew_fraction < 1 - self.safety_margin_fraction:
            problems.append(
                f"renew_fraction must be in (0, 1 - safety_margin_fraction) so the renew comes before the deadline, "
                f"got {self.renew_fraction:g}"
            )
        for name in ("renew_retry_fraction", "renew_timeout_fraction"):
            if not 0 < getattr(self, name) < 1:
                problems.append(f"{name} must be in (0, 1), got {getattr(self, name):g}")
        for name in ("standby_poll", "release_timeout", "time_scale"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be greater than 0, got {getattr(self, name):g}")
        if not self.path or not self.lease_path or self.path == self.lease_path:
            problems.append("path and lease_path must be set and differ")
        if problems:
            raise ElectionSettingsError("; ".join(problems))

    @property
    def ttl_s(self) -> float:
        return self.ttl * self.time_scale

    @property
    def margin_s(self) -> float:
        return self.ttl * self.safety_margin_fraction * self.time_scale

    @property
    def renew_after_s(self) -> float:
        return self.ttl * self.renew_fraction * self.time_scale

    @property
    def renew_retry_s(self) -> float:
        return self.ttl * self.renew_retry_fraction * self.time_scale

    @property
    def renew_timeout_s(self) -> float:
        return self.ttl * self.renew_timeout_fraction * self.time_scale

    @property
    def lock_delay_s(self) -> float:
        return self.lock_delay * self.time_scale

    @property
    def standby_poll_s(self) -> float:
        return self.standby_poll * self.time_scale

    @property
    def error_backoff_max_s(self) -> float:
        return DEFAULT_ERROR_BACKOFF_MAX * self.time_scale

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LeaderElectionConfig:
        """Settings from NOMAD_OPERATOR_LEADER_{PATH,LEASE_PATH,MODE,TTL,LOCK_DELAY} (seconds); unset keeps defaults."""
        values: dict[str, object] = {}
        for name in ("path", "lease_path"):
            text = environ.get(ENV_PREFIX + name.upper(), "").strip()
            if text:
                values[name] = text
        mode = environ.get(ENV_PREFIX + "MODE", "").strip().lower()
        if mode:
            try:
                values["mode"] = ElectionMode(mode)
            except ValueError:
                choices = ", ".join(m.value for m in ElectionMode)
                raise ElectionSettingsError(f"{ENV_PREFIX}MODE must be one of {choices}, got {mode!r}") from None
        for name in ("ttl", "lock_delay"):
            text = environ.get(ENV_PREFIX + name.upper(), "").strip()
            if text:
                try:
                    values[name] = float(text.removesuffix("s"))
                except ValueError:
                    raise ElectionSettingsError(
                        f"{ENV_PREFIX}{name.upper()} must be a number of seconds, got {text!r}"
                    ) from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LeaderTerm:
    """One held lock or lease, seen from the holder: when it was last confirmed, hence when to renew and to stop."""

    confirmed_at: float
    """Monotonic time at which the last successful acquire or renew was SENT (not answered)."""
    ttl: float
    margin: float
    renew_after: float

    @classmethod
    def start(cls, sent_at: float, config: LeaderElectionConfig) -> LeaderTerm:
        return cls(confirmed_at=sent_at, ttl=config.ttl_s, margin=config.margin_s, renew_after=config.renew_after_s)

    @property
    def deadline(self) -> float:
        """The last instant at which this replica may send a write."""
        return self.confirmed_at + self.ttl - self.margin

    @property
    def renew_at(self) -> float:
        return self.confirmed_at + self.renew_after

    def valid_at(self, now: float) -> bool:
        return now < self.deadline

    def renewed(self, sent_at: float) -> LeaderTerm:
        """The term after a successful renew sent at `sent_at`; an answer to an older request never shortens it."""
        return replace(self, confirmed_at=max(self.confirmed_at, sent_at))
