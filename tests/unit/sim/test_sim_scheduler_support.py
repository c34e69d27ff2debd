"""Builders for the scheduler tests: nodes, jobs in Nomad API JSON, and a tiny state store that applies plans.

The scheduler is pure, so its tests build its inputs by hand. ``Cluster`` applies a plan the way the simulator's
state store does (stops become desired "stop", placements become new running allocations), so a test can walk a
cluster through node loss and recovery one evaluation at a time. Imported by the other test_sim_scheduler* files.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nomad_operator.sim.scheduler import AllocInfo, NodeInfo, Plan, compute_plan

DRIVERS = frozenset({"docker", "exec", "raw_exec"})


def make_node(
    name: str,
    *,
    datacenter: str = "dc1",
    status: str = "ready",
    eligible: bool = True,
    draining: bool = False,
    cpu_mhz: int = 4000,
    memory_mb: int = 8192,
    drivers: frozenset[str] = DRIVERS,
    arch: str = "arm64",
    node_class: str = "",
    node_pool: str = "default",
    attributes: Mapping[str, str] | None = None,
    meta: Mapping[str, str] | None = None,
) -> NodeInfo:
    attrs = {
        "cpu.arch": arch,
        "kernel.name": "linux",
        "cpu.numcores": "4",
        "unique.network.ip-address": f"10.0.0.{sum(map(ord, name)) % 250 + 1}",
        "nomad.version": "1.9.3",
    }
    attrs.update(attributes or {})
    return NodeInfo(
        id=f"node-{name}",
        name=name,
        datacenter=datacenter,
        node_class=node_class,
        node_pool=node_pool,
        status=status,
        eligible=eligible,
        draining=draining,
        attributes=attrs,
        meta=dict(meta or {}),
        cpu_mhz=cpu_mhz,
        memory_mb=memory_mb,
        drivers=drivers,
    )


def three_pis(**overrides: Any) -> list[NodeInfo]:
    return [make_node(name, **overrides) for name in ("pi1", "pi2", "pi3")]


def make_job(
    job_id: str = "web",
    *,
    job_type: str = "service",
    count: int = 3,
    group: str = "web",
    datacenters: Iterable[str] = ("dc1",),
    job_constraints: Iterable[Mapping[str, Any]] = (),
    constraints: Iterable[Mapping[str, Any]] = (),
    task_constraints: Iterable[Mapping[str, Any]] = (),
    cpu: int = 100,
    memory: int = 128,
    driver: str = "docker",
    image: str = "traefik/whoami:v1.10",
    reserved_ports: Mapping[str, int] | None = None,
    dynamic_ports: Iterable[str] = (),
    stop: bool = False,
    extra_group: Mapping[str, Any] | None = None,
    extra_job: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A canonical-looking API job with one group of one task."""
    networks = []
    if reserved_ports or dynamic_ports:
        networks.append(
            {
                "Mode": "host",
                "ReservedPorts": [{"Label": k, "Value": v, "To": 0} for k, v in (reserved_ports or {}).items()] or None,
                "DynamicPorts": [{"Label": k, "Value": 0, "To": 0} for k in dynamic_ports] or None,
            }
        )
    task_group: dict[str, Any] = {
        "Name": group,
        "Count": count,
        "Constraints": list(constraints) or None,
        "Networks": networks or None,
        "ReschedulePolicy": {"Attempts": 0, "Unlimited": True, "Delay": 30_000_000_000},
        "Tasks": [
            {
                "Name": "server",
                "Driver": driver,
                "Config": {"image": image},
                "Constraints": list(task_constraints) or None,
                "Resources": {"CPU": cpu, "MemoryMB": memory},
                "Services": [{"Name": job_id}],
            }
        ],
    }
    task_group.update(extra_group or {})
    job: dict[str, Any] = {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Region": "global",
        "Type": job_type,
        "Datacenters": list(datacenters),
        "NodePool": "default",
        "Constraints": list(job_constraints) or None,
        "TaskGroups": [task_group],
        "Stop": stop,
    }
    job.update(extra_job or {})
    return job


def distinct_hosts() -> dict[str, Any]:
    return {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}


@dataclass
class Cluster:
    """Nodes, jobs and allocations, changed only by applying plans the way the simulator's state store does."""

    nodes: list[NodeInfo]
    allocs: list[AllocInfo] = field(default_factory=list)
    seed: int = 7
    next_id: int = 0

    def plan(
        self,
        job: Mapping[str, Any],
        *,
        version: int = 0,
        job_versions: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> Plan:
        mine = [alloc for alloc in self.allocs if alloc.job_id == job["ID"]]
        others = [
            alloc
            for alloc in self.allocs
            if alloc.job_id != job["ID"] and alloc.desired_status == "run" and alloc.client_status == "running"
        ]
        return compute_plan(
            job,
            job_version=version,
            nodes=list(self.nodes),
            job_allocs=mine,
            other_allocs=others,
            rng=random.Random(self.seed),
            job_versions=job_versions,
        )

    def apply(self, job: Mapping[str, Any], plan: Plan, *, version: int = 0) -> None:
        stops = {stop.alloc_id: stop for stop in plan.stops}
        updated = []
        for alloc in self.allocs:
            stop = stops.get(alloc.id)
            if stop is not None:
                alloc = replace(alloc, desired_status="stop", client_status=stop.client_status or "complete")
            elif alloc.id in plan.in_place_updates:
                alloc = replace(alloc, job_version=version)
            updated.append(alloc)
        for placement in plan.placements:
            self.next_id += 1
            updated.append(
                AllocInfo(
                    id=f"alloc-{self.next_id:04d}",
                    namespace="default",
                    job_id=job["ID"],
                    task_group=placement.task_group,
                    name=placement.name,
                    node_id=placement.node_id,
                    job_version=version,
                    desired_status="run",
                    client_status="running",
                    cpu_mhz=placement.cpu_mhz,
                    memory_mb=placement.memory_mb,
                    ports=placement.ports,
                )
            )
        self.allocs = updated

    def run(self, job: Mapping[str, Any], *, version: int = 0, **kwargs: Any) -> Plan:
        plan = self.plan(job, version=version, **kwargs)
        self.apply(job, plan, version=version)
        return plan

    def set_node(self, name: str, **changes: Any) -> None:
        self.nodes = [replace(node, **changes) if node.name == name else node for node in self.nodes]

    def live(self, job_id: str | None = None) -> list[AllocInfo]:
        return [
            alloc
            for alloc in self.allocs
            if alloc.desired_status == "run"
            and alloc.client_status in ("pending", "running", "unknown")
            and (job_id is None or alloc.job_id == job_id)
        ]

    def node_of(self, alloc: AllocInfo) -> NodeInfo:
        return next(node for node in self.nodes if node.id == alloc.node_id)

    def update(self, alloc_id: str, **changes: Any) -> None:
        self.allocs = [replace(alloc, **changes) if alloc.id == alloc_id else alloc for alloc in self.allocs]
