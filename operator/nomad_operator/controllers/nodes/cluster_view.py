"""Typed, read-only views of the Nomad objects the node controller decides on: nodes, allocations, jobs, evaluations.

The decision modules (incidents, flapping, rebalance) are pure and must not know Nomad's wire JSON, which differs
between the event stream (full objects), list stubs (`JobType` instead of `Job.Type`) and the cache's projections
(only declared fields). The hazard is a decision that silently goes wrong because a field was missing: every view is
built by a `from_wire` that tolerates absent and null fields with Nomad's zero values, and the projection each view
needs is declared here next to it (`*_FIELDS`), so the cache keeps exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

NODE_READY: Final = "ready"
NODE_DOWN: Final = "down"
NODE_DISCONNECTED: Final = "disconnected"
NODE_GONE_STATUSES: Final = frozenset({NODE_DOWN, NODE_DISCONNECTED})

ALLOC_RUNNING: Final = "running"
ALLOC_PENDING: Final = "pending"
ALLOC_LOST: Final = "lost"
ALLOC_UNKNOWN: Final = "unknown"
DESIRED_RUN: Final = "run"

JOB_SERVICE: Final = "service"
DEPLOYMENT_ACTIVE_STATUSES: Final = frozenset(
    {"running", "paused", "pending", "initializing", "blocked", "unblocking"}
)

NODE_FIELDS: Final = (
    "Name", "Status", "SchedulingEligibility", "DrainStrategy", "Datacenter", "NodeClass", "NodePool",
    "Attributes", "Meta", "StatusUpdatedAt",
)  # fmt: skip
ALLOCATION_FIELDS: Final = (
    "Name", "JobID", "TaskGroup", "NodeID", "NodeName", "ClientStatus", "DesiredStatus", "CreateIndex",
    "PreviousAllocation", "NextAllocation", "DesiredTransition", "JobType", "Job.Type", "ModifyTime",
)  # fmt: skip
JOB_FIELDS: Final = (
    "Type", "Meta", "Stop", "Status", "Version", "Constraints", "Spreads", "TaskGroups.Name", "TaskGroups.Count",
    "TaskGroups.Constraints", "TaskGroups.Spreads",
)  # fmt: skip
EVALUATION_FIELDS: Final = ("JobID", "Status", "TriggeredBy", "FailedTGAllocs", "CreateIndex", "BlockedEval")
DEPLOYMENT_FIELDS: Final = ("JobID", "Status", "JobVersion")


@dataclass(frozen=True, slots=True, order=True)
class JobRef:
    """A job by namespace and ID; prints as `default/whoami`."""

    namespace: str
    job_id: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.job_id}"


def _job_ref(obj: Mapping[str, Any], *, id_field: str) -> JobRef:
    """The job an object names: a job's own `ID`, or the `JobID` of an allocation, evaluation or deployment."""
    return JobRef(_text(obj, "Namespace") or "default", _text(obj, id_field))


def _text(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else default


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items() if item is not None}


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    name: str
    status: str
    eligible: bool = True
    draining: bool = False
    datacenter: str = ""
    node_class: str = ""
    node_pool: str = "default"
    attributes: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    status_updated_at: int = 0  # unix seconds of the last status change

    @property
    def ready(self) -> bool:
        return self.status == NODE_READY

    @property
    def gone(self) -> bool:
        """Down or disconnected: its allocations are lost or unknown."""
        return self.status in NODE_GONE_STATUSES

    @property
    def schedulable(self) -> bool:
        """Nomad may place new allocations here."""
        return self.ready and self.eligible and not self.draining

    @classmethod
    def from_wire(cls, node: Mapping[str, Any]) -> NodeView:
        node_id = _text(node, "ID")
        return cls(
            id=node_id,
            name=_text(node, "Name") or node_id[:8],
            status=_text(node, "Status"),
            eligible=node.get("SchedulingEligibility", "eligible") == "eligible",
            draining=node.get("DrainStrategy") is not None or node.get("Drain") is True,
            datacenter=_text(node, "Datacenter"),
            node_class=_text(node, "NodeClass"),
            node_pool=_text(node, "NodePool") or "default",
            attributes=_strings(node.get("Attributes")),
            meta=_strings(node.get("Meta")),
            status_updated_at=_int(node, "StatusUpdatedAt"),
        )


@dataclass(frozen=True, slots=True)
class AllocView:
    id: str
    job: JobRef
    task_group: str
    node_id: str
    client_status: str
    desired_status: str = DESIRED_RUN
    name: str = ""
    job_type: str = ""
    create_index: int = 0
    modify_index: int = 0
    previous_allocation: str = ""
    next_allocation: str = ""
    migrating: bool = False
    modify_time: int = 0  # unix nanoseconds of the last change

    @property
    def live(self) -> bool:
        """Holds (or is about to hold) capacity: wanted running and pending or running on its client."""
        return self.desired_status == DESIRED_RUN and self.client_status in (ALLOC_PENDING, ALLOC_RUNNING)

    @property
    def running(self) -> bool:
        return self.desired_status == DESIRED_RUN and self.client_status == ALLOC_RUNNING

    @property
    def lost(self) -> bool:
        """Lost with its node (down), or unknown while its node is disconnected."""
        return self.client_status in (ALLOC_LOST, ALLOC_UNKNOWN)

    @classmethod
    def from_wire(cls, alloc: Mapping[str, Any]) -> AllocView:
        job = alloc.get("Job")
        job_type = _text(alloc, "JobType") or (_text(job, "Type") if isinstance(job, Mapping) else "")
        transition = alloc.get("DesiredTransition")
        return cls(
            id=_text(alloc, "ID"),
            job=_job_ref(alloc, id_field="JobID"),
            task_group=_text(alloc, "TaskGroup"),
            node_id=_text(alloc, "NodeID"),
            client_status=_text(alloc, "ClientStatus"),
            desired_status=_text(alloc, "DesiredStatus", DESIRED_RUN),
            name=_text(alloc, "Name"),
            job_type=job_type,
            create_index=_int(alloc, "CreateIndex"),
            modify_index=_int(alloc, "ModifyIndex"),
            previous_allocation=_text(alloc, "PreviousAllocation"),
            next_allocation=_text(alloc, "NextAllocation"),
            migrating=isinstance(transition, Mapping) and transition.get("Migrate") is True,
            modify_time=_int(alloc, "ModifyTime"),
        )


@dataclass(frozen=True, slots=True)
class SpreadView:
    attribute: str
    weight: int = 50
    targets: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupView:
    name: str
    count: int
    distinct_hosts: bool = False
    spreads: tuple[SpreadView, ...] = ()


@dataclass(frozen=True, slots=True)
class JobView:
    ref: JobRef
    type: str
    groups: tuple[GroupView, ...]
    meta: Mapping[str, str] = field(default_factory=dict)
    stopped: bool = False
    version: int = 0

    def group(self, name: str) -> GroupView | None:
        return next((group for group in self.groups if group.name == name), None)

    @classmethod
    def from_wire(cls, job: Mapping[str, Any]) -> JobView:
        job_distinct = _wants_distinct_hosts(job.get("Constraints"))
        job_spreads = _spreads(job.get("Spreads"))
        groups = []
        for group in job.get("TaskGroups") or []:
            if not isinstance(group, Mapping):
                continue
            constraints = group.get("Constraints")
            distinct = _wants_distinct_hosts(constraints) if _has_distinct(constraints) else job_distinct
            groups.append(
                GroupView(
                    name=_text(group, "Name"),
                    count=_int(group, "Count"),
                    distinct_hosts=distinct,
                    spreads=job_spreads + _spreads(group.get("Spreads")),
                )
            )
        return cls(
            ref=_job_ref(job, id_field="ID"),
            type=_text(job, "Type", JOB_SERVICE),
            groups=tuple(groups),
            meta=_strings(job.get("Meta")),
            stopped=job.get("Stop") is True,
            version=_int(job, "Version"),
        )


def _has_distinct(constraints: Any) -> bool:
    return isinstance(constraints, list) and any(
        isinstance(item, Mapping) and item.get("Operand") == "distinct_hosts" for item in constraints
    )


def _wants_distinct_hosts(constraints: Any) -> bool:
    """Nomad: the first distinct_hosts constraint decides; an empty or unparsable RTarget means true."""
    if not isinstance(constraints, list):
        return False
    for item in constraints:
        if isinstance(item, Mapping) and item.get("Operand") == "distinct_hosts":
            target = str(item.get("RTarget") or "").strip().lower()
            return target not in ("false", "0", "f")
    return False


def _spreads(value: Any) -> tuple[SpreadView, ...]:
    if not isinstance(value, list):
        return ()
    spreads = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("Attribute"), str):
            continue
        targets = {}
        for target in item.get("SpreadTarget") or []:
            if isinstance(target, Mapping) and isinstance(target.get("Value"), str):
                targets[target["Value"]] = _int(target, "Percent")
        weight = _int(item, "Weight") or 50
        spreads.append(SpreadView(attribute=item["Attribute"], weight=weight, targets=targets))
    return tuple(spreads)


@dataclass(frozen=True, slots=True)
class EvalView:
    id: str
    job: JobRef
    status: str
    triggered_by: str = ""
    create_index: int = 0
    modify_index: int = 0
    failed_groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, evaluation: Mapping[str, Any]) -> EvalView:
        failed = evaluation.get("FailedTGAllocs")
        groups = (
            {str(name): metric for name, metric in failed.items() if isinstance(metric, Mapping)}
            if isinstance(failed, Mapping)
            else {}
        )
        return cls(
            id=_text(evaluation, "ID"),
            job=_job_ref(evaluation, id_field="JobID"),
            status=_text(evaluation, "Status"),
            triggered_by=_text(evaluation, "TriggeredBy"),
            create_index=_int(evaluation, "CreateIndex"),
            modify_index=_int(evaluation, "ModifyIndex"),
            failed_groups=groups,
        )


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: str
    job: JobRef
    status: str

    @property
    def active(self) -> bool:
        return self.status in DEPLOYMENT_ACTIVE_STATUSES

    @classmethod
    def from_wire(cls, deployment: Mapping[str, Any]) -> DeploymentView:
        return cls(
            id=_text(deployment, "ID"),
            job=_job_ref(deployment, id_field="JobID"),
            status=_text(deployment, "Status"),
        )
