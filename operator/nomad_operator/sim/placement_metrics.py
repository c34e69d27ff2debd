"""Why a placement failed, in Nomad's words: the AllocMetric that lands in an evaluation's ``FailedTGAllocs``.

The operator and its tests tell "blocked by distinct_hosts" from "out of memory" by reading this object, so its keys
and counting rules follow Nomad's ``structs.AllocMetric`` (nomad/structs/alloc.go): a node filtered by a constraint
counts once under ``NodesFiltered`` and once under the constraint's text in ``ConstraintFiltered`` (and under its class
in ``ClassFiltered`` when it has one); a feasible node that cannot fit counts under ``NodesExhausted`` and the first
exhausted dimension ("cpu", "memory", "network: reserved port collision http=9999"); maps nothing was counted in stay
``null``, as Go's lazily built maps encode. Later failures of the same group only bump ``CoalescedFailures`` and add
their tasks' resources again to ``ResourcesExhausted``, like ``AllocMetric.ExhaustResources``. The hazard is a
simulator that blocks for the right reason but reports a shape no real cluster would send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DIMENSION_CPU = "cpu"
DIMENSION_MEMORY = "memory"
DYNAMIC_PORT_FAILED = "network: dynamic port selection failed"


def reserved_port_collision(label: str, value: int) -> str:
    """The DimensionExhausted key Nomad's network index gives a static port that is taken."""
    return f"network: reserved port collision {label}={value}"


def _bump(counts: dict[str, int] | None, key: str) -> dict[str, int]:
    counts = {} if counts is None else counts
    counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(slots=True)
class FailureMetric:
    """Counts gathered while one placement walked the candidate nodes; ``to_json`` gives Nomad's AllocMetric."""

    node_pool: str
    nodes_available: Mapping[str, int]
    nodes_in_pool: int
    nodes_evaluated: int = 0
    nodes_filtered: int = 0
    nodes_exhausted: int = 0
    class_filtered: dict[str, int] | None = None
    constraint_filtered: dict[str, int] | None = None
    class_exhausted: dict[str, int] | None = None
    dimension_exhausted: dict[str, int] | None = None
    resources_exhausted: dict[str, dict[str, int]] | None = None
    coalesced_failures: int = 0

    def evaluate_node(self) -> None:
        self.nodes_evaluated += 1

    def filter_node(self, node_class: str, reason: str) -> None:
        self.nodes_filtered += 1
        if node_class:
            self.class_filtered = _bump(self.class_filtered, node_class)
        self.constraint_filtered = _bump(self.constraint_filtered, reason)

    def exhaust_node(self, node_class: str, dimension: str) -> None:
        self.nodes_exhausted += 1
        if node_class:
            self.class_exhausted = _bump(self.class_exhausted, node_class)
        self.dimension_exhausted = _bump(self.dimension_exhausted, dimension)

    def exhaust_resources(self, tasks: Iterable[tuple[str, int, int]]) -> None:
        """Add the tasks' CPU and memory for the exhausted dimensions (once per failed placement, as Nomad does)."""
        if self.dimension_exhausted is None:
            return
        exhausted = {} if self.resources_exhausted is None else self.resources_exhausted
        for name, cpu, memory in tasks:
            entry = exhausted.setdefault(name, {"CPU": 0, "MemoryMB": 0})
            if self.dimension_exhausted.get(DIMENSION_MEMORY, 0) > 0:
                entry["MemoryMB"] += memory
            if self.dimension_exhausted.get(DIMENSION_CPU, 0) > 0:
                entry["CPU"] += cpu
        self.resources_exhausted = exhausted

    def coalesce(self, tasks: Iterable[tuple[str, int, int]]) -> None:
        """Another placement of the same group failed: Nomad does not retry it, it counts it."""
        self.coalesced_failures += 1
        self.exhaust_resources(tasks)

    def to_json(self) -> dict[str, Any]:
        """Nomad's AllocMetric, keys in wire order (sorted)."""
        resources = None
        if self.resources_exhausted is not None:
            resources = {name: _resources_json(usage) for name, usage in self.resources_exhausted.items()}
        return {
            "AllocationTime": 0,  # a duration the scheduler would have to read a clock for; 0 keeps it pure
            "ClassExhausted": _copy(self.class_exhausted),
            "ClassFiltered": _copy(self.class_filtered),
            "CoalescedFailures": self.coalesced_failures,
            "ConstraintFiltered": _copy(self.constraint_filtered),
            "DimensionExhausted": _copy(self.dimension_exhausted),
            "NodePool": self.node_pool,
            "NodesAvailable": dict(self.nodes_available),
            "NodesEvaluated": self.nodes_evaluated,
            "NodesExhausted": self.nodes_exhausted,
            "NodesFiltered": self.nodes_filtered,
            "NodesInPool": self.nodes_in_pool,
            "QuotaExhausted": None,
            "ResourcesExhausted": resources,
            "ScoreMetaData": None,
            "Scores": None,
        }


def _copy(counts: dict[str, int] | None) -> dict[str, int] | None:
    return None if counts is None else dict(counts)


def _resources_json(usage: Mapping[str, int]) -> dict[str, Any]:
    # structs.Resources, every key present (it is not an omitempty object on the wire).
    return {
        "CPU": usage.get("CPU", 0),
        "Cores": 0,
        "Devices": None,
        "DiskMB": 0,
        "IOPS": 0,
        "MemoryMB": usage.get("MemoryMB", 0),
        "MemoryMaxMB": 0,
        "NUMA": None,
        "Networks": None,
        "SecretsMB": 0,
    }
