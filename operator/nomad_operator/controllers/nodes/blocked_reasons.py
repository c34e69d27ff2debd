"""Why Nomad could not place an allocation, in one word and one sentence, read from an evaluation's FailedTGAllocs.

Nomad explains a blocked placement only as an `AllocMetric`: counters of nodes filtered by each constraint
(`ConstraintFiltered`) and of nodes that ran out of a dimension (`DimensionExhausted`). With one of three nodes down,
consul, fabio and whoami each sit at 2/3 "blocked", and the operator must say *why* — `distinct_hosts` (nothing to do
but wait for the node), `port` (a static port is taken), `memory` or `cpu` (the cluster is full). The hazard is a
reason guessed from the wrong counter, so the rule is fixed and tested: the reason is the one that excluded the most
nodes; a tie goes to the more specific reason, in the order of `REASON_PRIORITY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

REASON_DISTINCT_HOSTS: Final = "distinct_hosts"
REASON_DISTINCT_PROPERTY: Final = "distinct_property"
REASON_PORT: Final = "port"
REASON_MEMORY: Final = "memory"
REASON_CPU: Final = "cpu"
REASON_RESOURCES: Final = "resources"
REASON_CONSTRAINT: Final = "constraint"
REASON_NO_NODES: Final = "no_nodes"
REASON_UNKNOWN: Final = "unknown"

REASON_PRIORITY: Final = (
    REASON_DISTINCT_HOSTS,
    REASON_PORT,
    REASON_MEMORY,
    REASON_CPU,
    REASON_RESOURCES,
    REASON_DISTINCT_PROPERTY,
    REASON_CONSTRAINT,
)


@dataclass(frozen=True, slots=True)
class BlockedReason:
    """`reason` is one of the REASON_* words; `message` is for people; `nodes` is how many nodes it excluded."""

    reason: str
    message: str
    nodes: int = 0


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {
        str(key): count for key, count in value.items() if isinstance(count, int) and not isinstance(count, bool)
    }


def reason_of_constraint(text: str) -> str:
    """The reason word for a `ConstraintFiltered` key (the constraint as Nomad prints it)."""
    if text.startswith("distinct_hosts"):
        return REASON_DISTINCT_HOSTS
    if text.startswith("distinct_property"):
        return REASON_DISTINCT_PROPERTY
    return REASON_CONSTRAINT


def reason_of_dimension(text: str) -> str:
    """The reason word for a `DimensionExhausted` key ("memory", "cpu", "network: reserved port collision lb=9999")."""
    lowered = text.lower()
    if lowered == "memory" or lowered.startswith("memory"):
        return REASON_MEMORY
    if lowered in ("cpu", "cores") or lowered.startswith("cpu"):
        return REASON_CPU
    if "port" in lowered:
        return REASON_PORT
    return REASON_RESOURCES


def classify_failure(metric: Mapping[str, Any]) -> BlockedReason:
    """The dominant reason one task group's placement failed, from its `AllocMetric`."""
    totals: dict[str, int] = {}
    details: dict[str, list[str]] = {}
    for text, count in sorted(_counts(metric.get("ConstraintFiltered")).items()):
        reason = reason_of_constraint(text)
        totals[reason] = totals.get(reason, 0) + count
        details.setdefault(reason, []).append(f"constraint {text!r} filtered {_nodes(count)}")
    for text, count in sorted(_counts(metric.get("DimensionExhausted")).items()):
        reason = reason_of_dimension(text)
        totals[reason] = totals.get(reason, 0) + count
        details.setdefault(reason, []).append(f"{text!r} exhausted on {_nodes(count)}")
    coalesced = metric.get("CoalescedFailures")
    extra = f" ({coalesced} more placements failed the same way)" if isinstance(coalesced, int) and coalesced else ""
    if not totals:
        evaluated = metric.get("NodesEvaluated")
        if not evaluated:
            return BlockedReason(REASON_NO_NODES, f"no ready, eligible node to place on{extra}", 0)
        return BlockedReason(REASON_UNKNOWN, f"no node fit ({evaluated} evaluated){extra}", 0)
    best = max(totals, key=lambda reason: (totals[reason], -REASON_PRIORITY.index(reason)))
    others = [line for reason in REASON_PRIORITY if reason != best for line in details.get(reason, [])]
    message = "; ".join([*details[best], *others]) + extra
    return BlockedReason(best, message, totals[best])


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"
