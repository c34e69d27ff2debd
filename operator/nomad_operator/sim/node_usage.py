"""What every node's live allocations use (CPU, memory, host ports), kept up to date as allocations change.

The scheduler needs, for every evaluation, what is already spoken for on each node. Summing it from every live
allocation of the cluster made each evaluation cost grow with the cluster's allocation count, so placing 10,000
allocations took quadratic time. The state store feeds this tracker on every allocation write instead, and an
evaluation reads the totals in time proportional to the number of nodes. The hazards handled: an allocation counted
twice (a second write of a live allocation replaces its contribution, never adds to it), a port freed while another
live allocation on the node still holds it (ports are reference-counted), and a consumer changing the shared totals
(they are handed out as read-only views; the placer copies what it changes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nomad_operator.sim.placement import NodeUsage


@dataclass(frozen=True, slots=True)
class AllocLoad:
    """What one live allocation holds on its node."""

    node_id: str
    cpu_mhz: int
    memory_mb: int
    ports: tuple[int, ...]


def alloc_load(alloc: Mapping[str, Any]) -> AllocLoad:
    """The load of an allocation, read from its wire form (AllocatedResources: task CPU and memory, shared ports)."""
    allocated = alloc.get("AllocatedResources") or {}
    cpu = memory = 0
    for task in (allocated.get("Tasks") or {}).values():
        cpu += (task.get("Cpu") or {}).get("CpuShares", 0)
        memory += (task.get("Memory") or {}).get("MemoryMB", 0)
    ports = tuple(port.get("Value", 0) for port in (allocated.get("Shared") or {}).get("Ports") or [])
    return AllocLoad(node_id=alloc["NodeID"], cpu_mhz=cpu, memory_mb=memory, ports=ports)


class NodeUsageTracker:
    """Per-node totals of the live allocations, updated one allocation at a time."""

    def __init__(self) -> None:
        self._usage: dict[str, NodeUsage] = {}
        self._port_refs: dict[str, Counter[int]] = {}
        self._loads: dict[str, AllocLoad] = {}

    @property
    def usage(self) -> Mapping[str, NodeUsage]:
        """Node ID -> what its live allocations use. Read-only: the objects are the tracker's own."""
        return self._usage

    def set_live(self, alloc_id: str, load: AllocLoad) -> None:
        """The allocation is live with this load (replacing whatever it held before)."""
        self.set_gone(alloc_id)
        self._loads[alloc_id] = load
        usage = self._usage.get(load.node_id)
        if usage is None:
            usage = self._usage[load.node_id] = NodeUsage()
            self._port_refs[load.node_id] = Counter()
        usage.cpu_mhz += load.cpu_mhz
        usage.memory_mb += load.memory_mb
        if load.ports:
            refs = self._port_refs[load.node_id]
            for port in load.ports:
                refs[port] += 1
                usage.ports.add(port)

    def set_gone(self, alloc_id: str) -> None:
        """The allocation is terminal or deleted: its node gets its resources back."""
        load = self._loads.pop(alloc_id, None)
        if load is None:
            return
        usage = self._usage[load.node_id]
        usage.cpu_mhz -= load.cpu_mhz
        usage.memory_mb -= load.memory_mb
        if load.ports:
            refs = self._port_refs[load.node_id]
            for port in load.ports:
                refs[port] -= 1
                if refs[port] <= 0:
                    del refs[port]
                    usage.ports.discard(port)

    def __len__(self) -> int:
        """How many live allocations are counted."""
        return len(self._loads)
