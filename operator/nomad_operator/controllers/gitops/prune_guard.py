"""`PruneGuard`: the only way a job that left git gets stopped, under DESIGN.md rule 4.

Pruning is the one action of the sync that destroys something, and the tools people use today prune on far too
little evidence (a tag on the job, a half-fetched repository, a parse error that made a file "disappear"). A job may
be stopped here only when all of these hold:
- it carries this source's owner meta (the caller passes only such jobs);
- the revision was fetched and converted completely: no file failed;
- pruning is enabled on the source;
- the job has been missing from git for the grace period (counted from the first revision that lacked it, so a
  rename that lands in two pushes, or a revert, never stops anything);
- the revision does not stop more than a set share of the source's owned jobs, unless the source forces it (a
  wrong `paths` glob would otherwise stop everything at once).
Everything else is reported as blocked, with the reason. The only state is when each job was first seen missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from nomad_operator.controllers.gitops.desired_state import JobKey


@dataclass(frozen=True, slots=True)
class PruneDecision:
    """Jobs to stop now, and the others that left git with the reason they stay."""

    prune: tuple[JobKey, ...] = ()
    blocked: dict[JobKey, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class PrunePolicy:
    enabled: bool
    grace_seconds: float
    max_share: float
    force: bool = False


class PruneGuard:
    """Remembers when each owned job was first missing from git, and decides which may be stopped."""

    def __init__(self) -> None:
        self._missing_since: dict[JobKey, float] = {}

    def decide(
        self,
        *,
        missing: Iterable[JobKey],
        owned_total: int,
        complete: bool,
        error_count: int,
        policy: PrunePolicy,
        now: float,
    ) -> PruneDecision:
        """`missing`: running jobs with this source's owner meta that the revision does not define;
        `owned_total`: running jobs with this source's owner meta; `complete`: no file of the revision failed."""
        gone = sorted(set(missing))
        if complete:
            # Only a complete revision proves a job left git; keep the clock of the others, reset the rest.
            self._missing_since = {key: self._missing_since.get(key, now) for key in gone}
        else:
            for key in gone:
                self._missing_since.setdefault(key, now)
        if not gone:
            return PruneDecision()
        if not policy.enabled:
            return PruneDecision(blocked=dict.fromkeys(gone, "not in git; prune is off, so the job stays"))
        if not complete:
            reason = f"not in git, but {error_count} file(s) of this revision failed: nothing is pruned"
            return PruneDecision(blocked=dict.fromkeys(gone, reason))
        ready: list[JobKey] = []
        blocked: dict[JobKey, str] = {}
        for key in gone:
            waited = now - self._missing_since[key]
            if waited < policy.grace_seconds:
                blocked[key] = f"not in git; pruned after the grace period ({policy.grace_seconds - waited:.0f} s left)"
            else:
                ready.append(key)
        allowed = max(1, math.floor(policy.max_share * owned_total))
        if len(ready) > allowed and not policy.force:
            reason = (
                f"not in git; this revision would stop {len(ready)} of {owned_total} jobs, more than the allowed "
                f"share {policy.max_share:.0%} ({allowed}); set pruneForce to allow it"
            )
            blocked.update(dict.fromkeys(ready, reason))
            ready = []
        return PruneDecision(prune=tuple(ready), blocked=blocked)

    def forget(self, key: JobKey) -> None:
        """The job was stopped (or came back): its clock ends."""
        self._missing_since.pop(key, None)
