"""Status conditions of custom resources: Ready, Reconciling and Stalled, the way Flux and kstatus use them.

Users read conditions to learn whether a resource converged, is still converging, or is stuck and needs them. The
hazards are subtle and all about consistency:

- `lastTransitionTime` must say when the *status* last flipped, not when the condition was last written; a reconciler
  that rewrites `Ready=True` every minute must not make the resource look freshly ready every minute;
- the three conditions must not contradict each other (a resource is never both Ready=True and Stalled=True), so they
  are set through `mark_*` helpers that keep them consistent, Flux-style:

  | helper              | Ready   | Reconciling | Stalled |
  |---------------------|---------|-------------|---------|
  | `mark_reconciling`  | Unknown | True        | removed |
  | `mark_ready`        | True    | removed     | removed |
  | `mark_failed`       | False   | True        | removed |  (will be retried)
  | `mark_stalled`      | False   | removed     | True    |  (retrying cannot help: needs a change)

- `observedGeneration` says which spec generation the condition describes, so a reader can tell a stale Ready=True
  from a current one.

Everything here is pure: conditions are immutable values, helpers return new tuples, and the time is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"

MESSAGE_MAX_LENGTH: Final = 4096
"""Longer messages are cut (status lives in a 64 KiB Nomad Variable together with the spec)."""

_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,127}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z0-9]{0,127}$")
_FLAGS: Final = frozenset({RECONCILING, STALLED})


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition; serialised with Kubernetes' camelCase keys by `to_dict()`."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": str(self.status),
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        """Read one condition from a status document; every problem is named in one ValueError."""
        problems: list[str] = []
        kind, status, reason = data.get("type"), data.get("status"), data.get("reason")
        message, time = data.get("message", ""), data.get("lastTransitionTime")
        generation = data.get("observedGeneration", 0)
        if not isinstance(kind, str) or not _TYPE.match(kind):
            problems.append(f"type must be a CamelCase word, got {kind!r}")
        if not isinstance(status, str) or status not in {member.value for member in ConditionStatus}:
            problems.append(f"status must be True, False or Unknown, got {status!r}")
        if not isinstance(reason, str) or not _REASON.match(reason):
            problems.append(f"reason must be a CamelCase word, got {reason!r}")
        if not isinstance(message, str):
            problems.append(f"message must be a string, got {type(message).__name__}")
        if not isinstance(time, str) or _parse_time(time) is None:
            problems.append(f"lastTransitionTime must be an RFC 3339 time, got {time!r}")
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
            problems.append(f"observedGeneration must be an integer >= 0, got {generation!r}")
        if problems:
            raise ValueError(f"invalid condition {dict(data)!r}: " + "; ".join(problems))
        return cls(str(kind), ConditionStatus(str(status)), str(reason), str(message), str(time), int(generation))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, like Kubernetes' metav1.Time."""
    if moment.tzinfo is None:
        raise ValueError("condition times must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def conditions_from_status(status: Mapping[str, Any] | None) -> tuple[Condition, ...]:
    """The conditions in a resource's status document (none if it has none)."""
    raw = (status or {}).get("conditions") or []
    if not isinstance(raw, list):
        raise ValueError(f"status.conditions must be a list, got {type(raw).__name__}")
    return tuple(Condition.from_dict(item) for item in raw)


def conditions_to_status(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    return [condition.to_dict() for condition in conditions]


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    return next((condition for condition in conditions if condition.type == condition_type), None)


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    condition = find_condition(conditions, condition_type)
    return condition is not None and condition.status is ConditionStatus.TRUE


def is_ready(conditions: Sequence[Condition], *, generation: int | None = None) -> bool:
    """Ready=True, and (if `generation` is given) observed at that generation, not an older spec."""
    condition = find_condition(conditions, READY)
    if condition is None or condition.status is not ConditionStatus.TRUE:
        return False
    return generation is None or condition.observed_generation == generation


def set_condition(
    conditions: Sequence[Condition],
    *,
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """Set one condition, keeping its lastTransitionTime when the status did not change and the others' order."""
    if not _TYPE.match(condition_type):
        raise ValueError(f"condition type must be a CamelCase word, got {condition_type!r}")
    if not _REASON.match(reason):
        raise ValueError(f"condition reason must be a CamelCase word such as 'ReconciliationSucceeded', got {reason!r}")
    if observed_generation < 0:
        raise ValueError(f"observedGeneration must be >= 0, got {observed_generation}")
    if len(message) > MESSAGE_MAX_LENGTH:
        message = message[: MESSAGE_MAX_LENGTH - 1] + "…"
    previous = find_condition(conditions, condition_type)
    since = (
        previous.last_transition_time
        if previous is not None and previous.status is ConditionStatus(status)
        else format_time(now)
    )
    updated = Condition(condition_type, ConditionStatus(status), reason, message, since, observed_generation)
    if previous is None:
        return (*conditions, updated)
    return tuple(updated if condition.type == condition_type else condition for condition in conditions)


def remove_condition(conditions: Sequence[Condition], condition_type: str) -> tuple[Condition, ...]:
    return tuple(condition for condition in conditions if condition.type != condition_type)


def mark_reconciling(
    conditions: Sequence[Condition], *, reason: str, message: str, observed_generation: int, now: datetime
) -> tuple[Condition, ...]:
    """Work is in progress: Reconciling=True, Ready=Unknown, Stalled removed."""
    return _mark(
        conditions, ready=ConditionStatus.UNKNOWN, flagged=RECONCILING, reason=reason, message=message,
        observed_generation=observed_generation, now=now,
    )  # fmt: skip


def mark_ready(
    conditions: Sequence[Condition],
    *,
    reason: str = "ReconciliationSucceeded",
    message: str,
    observed_generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """Converged: Ready=True; Reconciling and Stalled removed."""
    return _mark(
        conditions, ready=ConditionStatus.TRUE, flagged=None, reason=reason, message=message,
        observed_generation=observed_generation, now=now,
    )  # fmt: skip


def mark_failed(
    conditions: Sequence[Condition], *, reason: str, message: str, observed_generation: int, now: datetime
) -> tuple[Condition, ...]:
    """A failure that will be retried: Ready=False, Reconciling=True, Stalled removed."""
    return _mark(
        conditions, ready=ConditionStatus.FALSE, flagged=RECONCILING, reason=reason, message=message,
        observed_generation=observed_generation, now=now,
    )  # fmt: skip


def mark_stalled(
    conditions: Sequence[Condition], *, reason: str, message: str, observed_generation: int, now: datetime
) -> tuple[Condition, ...]:
    """Stuck until something changes (a terminal error): Stalled=True, Ready=False, Reconciling removed."""
    return _mark(
        conditions, ready=ConditionStatus.FALSE, flagged=STALLED, reason=reason, message=message,
        observed_generation=observed_generation, now=now,
    )  # fmt: skip


def _mark(
    conditions: Sequence[Condition],
    *,
    ready: ConditionStatus,
    flagged: str | None,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """One row of the module doc's table: Ready set to `ready`, `flagged` (Reconciling or Stalled, or neither) set
    True, and the other of the two removed, so that the three never contradict each other."""
    result = tuple(condition for condition in conditions if condition.type == flagged or condition.type not in _FLAGS)
    for condition_type, status in ((flagged, ConditionStatus.TRUE), (READY, ready)):
        if condition_type is not None:
            result = set_condition(
                result, condition_type=condition_type, status=status, reason=reason, message=message,
                observed_generation=observed_generation, now=now,
            )  # fmt: skip
    return result
