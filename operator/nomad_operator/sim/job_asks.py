"""What a job asks of the cluster, read once from its API JSON: per task group CPU, memory, ports, drivers, constraints.

The scheduler runs for every evaluation over a stored job in Nomad's API JSON (PascalCase). Reading that JSON in the
middle of placement would repeat the work for every node and turn a malformed field into a ``KeyError`` deep inside a
plan. Here it is read once into frozen asks, and anything the scheduler cannot honour (a Count that is not a
non-negative integer, a port above 65535, a task without a driver, a group defined twice, an unknown job Type) raises
``SchedulingInputError`` naming the field, before any decision is made, so a bad job changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nomad_operator.sim.constraints import (
    DEFAULT_REGION,
    Affinity,
    Constraint,
    parse_affinities,
    parse_constraints,
    wants_distinct_hosts,
)

DEFAULT_TASK_CPU_MHZ = 100  # api/resources.go defaults, for jobs that reach us without canonicalization
DEFAULT_TASK_MEMORY_MB = 300
MAX_PORT = 65535


class SchedulingInputError(ValueError):
    """The job JSON handed to the scheduler cannot be scheduled as written (the message names the field)."""


@dataclass(frozen=True, slots=True)
class PortAsk:
    label: str
    value: int  # 0 for a dynamic port
    to: int


@dataclass(frozen=True, slots=True)
class Spread:
    attribute: str
    weight: int
    targets: Mapping[str, int]  # value -> percent


@dataclass(frozen=True, slots=True)
class GroupAsk:
    """What one allocation of a task group needs from a node, read once from the job JSON."""

    name: str
    count: int
    cpu_mhz: int
    cores: int
    memory_mb: int
    reserved_ports: tuple[PortAsk, ...]
    dynamic_ports: tuple[PortAsk, ...]
    drivers: frozenset[str]
    task_resources: tuple[tuple[str, int, int], ...]  # (task, CPU, MemoryMB) for ResourcesExhausted
    constraints: tuple[Constraint, ...]  # group and task level, distinct_* included
    affinities: tuple[Affinity, ...]
    spreads: tuple[Spread, ...]
    distinct_hosts: bool
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JobAsk:
    """The job-level part of a placement decision."""

    id: str
    namespace: str
    type: str
    region: str
    datacenters: tuple[str, ...]
    node_pool: str
    constraints: tuple[Constraint, ...]
    affinities: tuple[Affinity, ...]
    spreads: tuple[Spread, ...]
    distinct_hosts: bool
    groups: tuple[GroupAsk, ...]


def _int(raw: Mapping[str, Any], key: str, where: str, *, default: int = 0, minimum: int = 0) -> int:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchedulingInputError(f"{where}.{key} must be an integer, not {value!r}")
    if value < minimum:
        raise SchedulingInputError(f"{where}.{key} must be at least {minimum}, not {value}")
    return value


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchedulingInputError(f"{where}.{key} must be a list, not {type(value).__name__}")
    for item in value:
        if not isinstance(item, Mapping):
            raise SchedulingInputError(f"{where}.{key} must hold objects, not {item!r}")
    return value


def _spreads(raw: Mapping[str, Any], where: str) -> tuple[Spread, ...]:
    spreads = []
    for item in _list(raw, "Spreads", where):
        targets = {
            str(target.get("Value", "")): _int(target, "Percent", f"{where}.Spreads.SpreadTarget")
            for target in _list(item, "SpreadTarget", f"{where}.Spreads")
        }
        spreads.append(Spread(str(item.get("Attribute") or ""), _int(item, "Weight", where, default=50), targets))
    return tuple(spreads)


def _ports(networks: list[Any], where: str) -> tuple[list[PortAsk], list[PortAsk]]:
    reserved: list[PortAsk] = []
    dynamic: list[PortAsk] = []
    for network in networks:
        for kind in ("ReservedPorts", "DynamicPorts"):
            for port in _list(network, kind, f"{where}.Networks[]"):
                value = _int(port, "Value", f"{where}.Networks[].{kind}")
                if value > MAX_PORT:
                    raise SchedulingInputError(f"{where}.Networks[].{kind}: port {value} is above {MAX_PORT}")
                to = port.get("To") or 0
                if not isinstance(to, int) or isinstance(to, bool):
                    raise SchedulingInputError(f"{where}.Networks[].{kind}.To must be an integer, not {to!r}")
                ask = PortAsk(label=str(port.get("Label") or ""), value=value, to=to)
                # jobspec2 moves ports with a static value to ReservedPorts; accept them in either list.
                (reserved if value > 0 else dynamic).append(ask)
    return reserved, dynamic


def parse_group(raw: Mapping[str, Any], *, job_id: str) -> GroupAsk:
    name = raw.get("Name")
    if not isinstance(name, str) or not name:
        raise SchedulingInputError(f"job {job_id!r}: every task group needs a Name")
    where = f"group {name!r}"
    count = _int(raw, "Count", where, default=1)
    reserved, dynamic = _ports(_list(raw, "Networks", where), where)
    constraints = list(parse_constraints(_list(raw, "Constraints", where)))
    affinities = list(parse_affinities(_list(raw, "Affinities", where)))
    cpu = cores = memory = 0
    drivers: set[str] = set()
    names: list[str] = []
    task_resources: list[tuple[str, int, int]] = []
    for task in _list(raw, "Tasks", where):
        task_name = str(task.get("Name") or "")
        task_where = f"{where} task {task_name!r}"
        driver = task.get("Driver")
        if not isinstance(driver, str) or not driver:
            raise SchedulingInputError(f"{task_where} needs a Driver")
        drivers.add(driver)
        resources = task.get("Resources") or {}
        if not isinstance(resources, Mapping):
            raise SchedulingInputError(f"{task_where}.Resources must be an object")
        task_cpu = _int(resources, "CPU", task_where, default=DEFAULT_TASK_CPU_MHZ)
        task_memory = _int(resources, "MemoryMB", task_where, default=DEFAULT_TASK_MEMORY_MB)
        task_cores = _int(resources, "Cores", task_where)
        cpu, memory, cores = cpu + (0 if task_cores else task_cpu), memory + task_memory, cores + task_cores
        names.append(task_name)
        task_resources.append((task_name, task_cpu, task_memory))
        task_reserved, task_dynamic = _ports(_list(resources, "Networks", task_where), task_where)
        reserved += task_reserved
        dynamic += task_dynamic
        constraints += parse_constraints(_list(task, "Constraints", task_where))
        affinities += parse_affinities(_list(task, "Affinities", task_where))
    if not names:
        raise SchedulingInputError(f"{where} has no tasks")
    return GroupAsk(
        name=name,
        count=count,
        cpu_mhz=cpu,
        cores=cores,
        memory_mb=memory,
        reserved_ports=tuple(reserved),
        dynamic_ports=tuple(dynamic),
        drivers=frozenset(drivers),
        task_resources=tuple(task_resources),
        constraints=tuple(constraints),
        affinities=tuple(affinities),
        spreads=_spreads(raw, where),
        distinct_hosts=wants_distinct_hosts(parse_constraints(_list(raw, "Constraints", where))),
        raw=raw,
    )


JOB_TYPES = frozenset({"service", "batch", "system", "sysbatch"})


def parse_job(raw: Mapping[str, Any]) -> JobAsk:
    job_id = raw.get("ID")
    if not isinstance(job_id, str) or not job_id:
        raise SchedulingInputError("the job has no ID")
    job_type = raw.get("Type") or "service"
    if job_type not in JOB_TYPES:
        raise SchedulingInputError(f"job {job_id!r}: unknown Type {job_type!r} (want one of {sorted(JOB_TYPES)})")
    where = f"job {job_id!r}"
    groups = tuple(parse_group(group, job_id=job_id) for group in _list(raw, "TaskGroups", where))
    seen: set[str] = set()
    for group in groups:
        if group.name in seen:
            raise SchedulingInputError(f"{where}: task group {group.name!r} is defined twice")
        seen.add(group.name)
    datacenters = raw.get("Datacenters") or ["*"]
    if not isinstance(datacenters, list) or not all(isinstance(dc, str) for dc in datacenters):
        raise SchedulingInputError(f"{where}.Datacenters must be a list of strings")
    constraints = parse_constraints(_list(raw, "Constraints", where))
    return JobAsk(
        id=job_id,
        namespace=str(raw.get("Namespace") or "default"),
        type=job_type,
        region=str(raw.get("Region") or DEFAULT_REGION),
        datacenters=tuple(datacenters),
        node_pool=str(raw.get("NodePool") or "default"),
        constraints=constraints,
        affinities=parse_affinities(_list(raw, "Affinities", where)),
        spreads=_spreads(raw, where),
        distinct_hosts=wants_distinct_hosts(constraints),
        groups=groups,
    )


# Fields that Nomad updates in place: changing only these keeps the running allocation (scheduler/util.go
# tasksUpdated compares everything that reaches the task's environment or resources, and none of these). A changed
# constraint is in place too, as long as the allocation's node still satisfies it (checked by the scheduler).
IN_PLACE_GROUP_FIELDS = frozenset(
    {
        "Count",
        "Update",
        "Migrate",
        "Scaling",
        "Services",
        "RestartPolicy",
        "ReschedulePolicy",
        "Disconnect",
        "ShutdownDelay",
        "StopAfterClientDisconnect",
        "MaxClientDisconnect",
        "PreventRescheduleOnLost",
        "Constraints",
        "Tasks",  # compared task by task below
    }
)
IN_PLACE_TASK_FIELDS = frozenset(
    {"Services", "RestartPolicy", "KillTimeout", "KillSignal", "ShutdownDelay", "Constraints"}
)


def _group_named(job: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for group in job.get("TaskGroups") or ():
        if isinstance(group, Mapping) and group.get("Name") == name:
            return group
    return None


def _without(raw: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key not in fields}


def needs_new_allocation(old_job: Mapping[str, Any], new_job: Mapping[str, Any], group_name: str) -> bool:
    """Whether moving an allocation of ``group_name`` from ``old_job`` to ``new_job`` needs a new allocation."""
    old, new = _group_named(old_job, group_name), _group_named(new_job, group_name)
    if old is None or new is None:
        return True
    if (old_job.get("Meta") or {}) != (new_job.get("Meta") or {}):
        return True  # job meta reaches every task's environment
    if _without(old, IN_PLACE_GROUP_FIELDS) != _without(new, IN_PLACE_GROUP_FIELDS):
        return True
    old_tasks, new_tasks = old.get("Tasks") or [], new.get("Tasks") or []
    if len(old_tasks) != len(new_tasks):
        return True
    return any(
        _without(before, IN_PLACE_TASK_FIELDS) != _without(after, IN_PLACE_TASK_FIELDS)
        for before, after in zip(old_tasks, new_tasks, strict=True)
    )
