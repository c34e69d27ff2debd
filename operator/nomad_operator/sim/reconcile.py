"""How the allocations of one task group are reconciled with the job: keep, stop, replace, update, or place anew.

Nomad's reconcilers (scheduler/reconcile.go for service and batch jobs, scheduler/util.go diffSystemAllocs for system
and sysbatch jobs) decide *what* a plan does before anything is placed; ``placement`` then decides *where*. The
hazards handled here are the ones the operator can see: a lost allocation replaced twice or never; a Count lowered
that stops the wrong indexes (Nomad stops the highest); a name reused while its owner still runs; a finished batch or
sysbatch allocation run again; a system job that follows a lost node to another node. When a failed allocation is
due for rescheduling (delay, attempts) is the simulator's call, because it needs the clock: it flags the allocation
with ``migrate`` and it is replaced here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nomad_operator.sim.job_asks import GroupAsk
from nomad_operator.sim.placement import is_live

if TYPE_CHECKING:
    from nomad_operator.sim.scheduler import AllocInfo, PlanBuilder

# DesiredDescription texts (hashicorp/nomad scheduler/structs/const.go).
ALLOC_NOT_NEEDED = "alloc not needed due to job update"
ALLOC_MIGRATING = "alloc is being migrated"
ALLOC_UPDATING = "alloc is being updated due to job update"
ALLOC_LOST = "alloc is lost since its node is down"
ALLOC_RESCHEDULED = "alloc was rescheduled because it failed"


def name_index(name: str) -> int:
    """The index in "<job>.<group>[<index>]"; -1 when the name does not carry one."""
    start = name.rfind("[")
    if start < 0 or not name.endswith("]"):
        return -1
    digits = name[start + 1 : -1]
    return int(digits) if digits.isdigit() else -1


# What the generic reconciler does with each allocation slot, in the order a duplicate name is resolved
# (the first role listed keeps the name; see _PRIORITY).
KEEP, IN_PLACE, DESTRUCTIVE, DONE, STUCK, MIGRATE, LOST, RESCHEDULE, UNKNOWN = (
    "keep",
    "in-place",
    "destructive",
    "done",
    "stuck",
    "migrate",
    "lost",
    "reschedule",
    "unknown",
)
_PRIORITY = {
    role: rank
    for rank, role in enumerate((KEEP, IN_PLACE, DESTRUCTIVE, DONE, STUCK, MIGRATE, LOST, RESCHEDULE, UNKNOWN))
}


def _replaces_lost(group: GroupAsk) -> bool:
    disconnect = group.raw.get("Disconnect") or {}
    return disconnect.get("Replace") is not False


def _generic_role(builder: PlanBuilder, group: GroupAsk, alloc: AllocInfo, context: _GroupContext) -> str | None:
    batch = builder.ask.type == "batch"
    if not is_live(alloc):
        if alloc.desired_status != "run":
            return None
        if batch and alloc.client_status == "complete" and alloc.job_version == builder.job_version:
            return DONE
        if alloc.client_status == "failed":
            # The simulator flags a failed allocation with migrate once its reschedule delay has passed.
            return RESCHEDULE if alloc.migrate else STUCK
        return None
    status = builder.node_status(alloc)
    if status == "down":
        return LOST if context.replace_lost else STUCK
    if status == "disconnected":
        if not context.replace_lost:
            return STUCK
        return None if alloc.name in context.healthy_names else UNKNOWN  # None: its replacement holds the name
    if alloc.migrate:
        return MIGRATE
    if alloc.job_version != builder.job_version:
        return DESTRUCTIVE if builder.needs_new_allocation(alloc, group) else IN_PLACE
    return KEEP


@dataclass(frozen=True, slots=True)
class _GroupContext:
    replace_lost: bool
    healthy_names: set[str]


def _retire(builder: PlanBuilder, group: GroupAsk, role: str, alloc: AllocInfo) -> None:
    """Let go of an allocation whose name is not needed (count lowered, or a duplicate name)."""
    if role == DONE:
        return
    if is_live(alloc) and builder.node_is_gone(alloc):
        builder.stop_lost(alloc)
    else:
        builder.stop(alloc, ALLOC_NOT_NEEDED)
    builder.annotate(group.name, "Stop")


def reconcile_generic_group(builder: PlanBuilder, group: GroupAsk, allocs: Sequence[AllocInfo]) -> None:
    """Service and batch jobs: keep Count allocations named "<job>.<group>[i]", replacing what was lost."""
    healthy = {a.name for a in allocs if is_live(a) and builder.node_status(a) not in ("down", "disconnected")}
    context = _GroupContext(_replaces_lost(group), healthy)
    slots: dict[int, list[tuple[str, AllocInfo]]] = {}
    for alloc in allocs:
        role = _generic_role(builder, group, alloc, context)
        if role is None:
            continue
        index = name_index(alloc.name)
        if index < 0:
            _retire(builder, group, role, alloc)  # a name outside Nomad's scheme can never be counted
            continue
        slots.setdefault(index, []).append((role, alloc))
    kept: dict[int, tuple[str, AllocInfo]] = {}
    for index, occupants in slots.items():
        occupants.sort(key=lambda occupant: _PRIORITY[occupant[0]])
        kept[index] = occupants[0]
        for role, alloc in occupants[1:]:
            _retire(builder, group, role, alloc)
    for index in sorted(kept, reverse=True)[: max(0, len(kept) - group.count)]:  # Count lowered: highest go first
        role, alloc = kept.pop(index)
        _retire(builder, group, role, alloc)
    destructive: list[AllocInfo] = []
    replacements: list[AllocInfo] = []
    for _, (role, alloc) in sorted(kept.items()):
        if role in (KEEP, DONE, STUCK):
            builder.annotate(group.name, "Ignore")
        elif role == IN_PLACE:
            builder.update_in_place(alloc, group)
        elif role == DESTRUCTIVE:
            destructive.append(alloc)
            builder.annotate(group.name, "DestructiveUpdate")
        else:
            replacements.append(alloc)
            _stop_replaced(builder, group, role, alloc)
    free = (index for index in range(group.count + len(kept)) if index not in kept)
    new_names = [f"{builder.ask.id}.{group.name}[{next(free)}]" for _ in range(group.count - len(kept))]
    builder.annotate(group.name, "Place", len(new_names))
    for alloc in destructive:  # first, as Nomad does: their stops free resources for what follows
        builder.place(group, alloc.name, previous=alloc, destructive=True)
    for alloc in replacements:
        builder.place(group, alloc.name, previous=alloc)
    for name in new_names:
        builder.place(group, name)


def _stop_replaced(builder: PlanBuilder, group: GroupAsk, role: str, alloc: AllocInfo) -> None:
    if role == MIGRATE:
        builder.stop(alloc, ALLOC_MIGRATING)
        builder.annotate(group.name, "Migrate")
        return
    if role == LOST:
        builder.stop_lost(alloc)
        builder.annotate(group.name, "Stop")
    elif role == RESCHEDULE:
        builder.stop(alloc, ALLOC_RESCHEDULED)
        builder.annotate(group.name, "RescheduleNow")
    builder.annotate(group.name, "Place")  # an unknown allocation keeps running until its node is back or lost


def reconcile_system_group(builder: PlanBuilder, group: GroupAsk, allocs: Sequence[AllocInfo]) -> None:
    """System and sysbatch jobs: one allocation per ready node that passes the constraints; none moves elsewhere."""
    sysbatch = builder.ask.type == "sysbatch"
    name = f"{builder.ask.id}.{group.name}[0]"
    covered: set[str] = set()
    destructive: list[AllocInfo] = []
    for alloc in allocs:
        if not is_live(alloc):
            finished = alloc.client_status in ("complete", "failed") and alloc.job_version == builder.job_version
            if sysbatch and finished:
                covered.add(alloc.node_id)  # a finished sysbatch allocation is not run again on its node
            continue
        node = builder.placer.node(alloc.node_id)
        if node is None or node.status == "down":
            builder.stop_lost(alloc)
            builder.annotate(group.name, "Stop")
        elif node.status == "disconnected":
            covered.add(alloc.node_id)
            builder.annotate(group.name, "Ignore")
        elif alloc.node_id in covered:
            builder.stop(alloc, ALLOC_NOT_NEEDED)  # a second allocation of the group on one node
            builder.annotate(group.name, "Stop")
        elif alloc.migrate:
            builder.stop(alloc, ALLOC_MIGRATING)
            builder.annotate(group.name, "Migrate")
        elif not builder.placer.could_run_on(group, node):
            builder.stop(alloc, ALLOC_NOT_NEEDED)
            builder.annotate(group.name, "Stop")
        else:
            covered.add(alloc.node_id)
            if alloc.job_version == builder.job_version:
                builder.annotate(group.name, "Ignore")
            elif builder.needs_new_allocation(alloc, group):
                destructive.append(alloc)
                builder.annotate(group.name, "DestructiveUpdate")
            else:
                builder.update_in_place(alloc, group)
    for alloc in destructive:
        builder.place(group, name, previous=alloc, destructive=True, only_node=alloc.node_id)
    for node in sorted(builder.placer.candidates, key=lambda node: node.id):
        if node.id in covered or builder.placer.static_reason(group, node) is not None:
            continue
        if builder.place(group, name, only_node=node.id) is not None:
            builder.annotate(group.name, "Place")
