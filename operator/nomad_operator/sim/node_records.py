"""Node records: building a simulated Raspberry Pi's Node object, and the scheduler's and list views of it.

The operator reads nodes through `/v1/nodes` stubs, full Node objects and events; the scheduler reads NodeInfo. Keeping
the three views in one place, built from one record, is what keeps them consistent (a node's IP, drivers and
resources are the same wherever they are read). Pure functions, no I/O.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from typing import Any

from nomad_operator.durations import SECOND
from nomad_operator.sim.config import (
    NODE_CORE_MHZ,
    NODE_CPU_CORES,
    NODE_DISK_MB,
    NODE_DRIVERS,
    NODE_IP_BASE,
    NODE_MEMORY_MB,
    NOMAD_VERSION,
    SimConfig,
)
from nomad_operator.sim.encoding import blank, fill
from nomad_operator.sim.scheduler import NodeInfo
from nomad_operator.sim.state import now_ns, rfc3339

ELIGIBLE = "eligible"
INELIGIBLE = "ineligible"


def node_info(node: Mapping[str, Any]) -> NodeInfo:
    """The scheduler's view of a node: allocatable resources are NodeResources minus ReservedResources."""
    resources = node.get("NodeResources") or {}
    reserved = node.get("ReservedResources") or {}
    drivers = frozenset(name for name, info in (node.get("Drivers") or {}).items() if info.get("Healthy"))
    return NodeInfo(
        id=node["ID"],
        name=node["Name"],
        datacenter=node["Datacenter"],
        node_class=node.get("NodeClass", ""),
        node_pool=node.get("NodePool") or "default",
        status=node["Status"],
        eligible=node.get("SchedulingEligibility") == ELIGIBLE,
        draining=node.get("DrainStrategy") is not None,
        attributes=dict(node.get("Attributes") or {}),
        meta=dict(node.get("Meta") or {}),
        cpu_mhz=(resources.get("Cpu") or {}).get("CpuShares", 0) - (reserved.get("Cpu") or {}).get("CpuShares", 0),
        memory_mb=(resources.get("Memory") or {}).get("MemoryMB", 0)
        - (reserved.get("Memory") or {}).get("MemoryMB", 0),
        drivers=drivers,
    )


def node_stub(node: Mapping[str, Any], *, with_resources: bool = False, with_os: bool = False) -> dict[str, Any]:
    stub = {
        "Address": (node.get("Attributes") or {}).get("unique.network.ip-address", ""),
        "CreateIndex": node["CreateIndex"],
        "Datacenter": node["Datacenter"],
        "Drain": node["DrainStrategy"] is not None,
        "Drivers": node["Drivers"],
        "HostVolumes": node.get("HostVolumes"),
        "ID": node["ID"],
        "LastDrain": node.get("LastDrain"),
        "ModifyIndex": node["ModifyIndex"],
        "Name": node["Name"],
        "NodeClass": node.get("NodeClass", ""),
        "NodePool": node.get("NodePool", "default"),
        "SchedulingEligibility": node["SchedulingEligibility"],
        "Status": node["Status"],
        "StatusDescription": node.get("StatusDescription", ""),
        "Version": (node.get("Attributes") or {}).get("nomad.version", ""),
    }
    if with_os:  # `?os=true` adds the OS attributes (NodeListStub.Attributes is omitempty otherwise)
        attributes = node.get("Attributes") or {}
        stub["Attributes"] = {key: attributes[key] for key in ("os.name", "os.version") if key in attributes}
    if with_resources:
        stub["NodeResources"] = node["NodeResources"]
        stub["ReservedResources"] = node["ReservedResources"]
    return stub


def node_event(message: str, subsystem: str, index: int, details: dict[str, str] | None = None) -> dict[str, Any]:
    return {"CreateIndex": index, "Details": details, "Message": message, "Subsystem": subsystem,
            "Timestamp": rfc3339()}


def build_node(*, name: str, number: int, config: SimConfig, rng: random.Random) -> dict[str, Any]:
    ip = f"{NODE_IP_BASE}{number}"
    drivers = {
        driver: {"Attributes": {f"driver.{driver}": "true"}, "Detected": True, "HealthDescription": "Healthy",
                 "Healthy": True, "UpdateTime": rfc3339()}
        for driver in NODE_DRIVERS
    }
    attributes = {
        "cpu.arch": config.arch,
        "cpu.frequency": str(NODE_CORE_MHZ),
        "cpu.numcores": str(NODE_CPU_CORES),
        "cpu.totalcompute": str(NODE_CORE_MHZ * NODE_CPU_CORES),
        "kernel.name": "linux",
        "memory.totalbytes": str(NODE_MEMORY_MB * 1024 * 1024),
        "nomad.version": NOMAD_VERSION,
        "os.name": "debian",
        "os.version": "12",
        "unique.hostname": name,
        "unique.network.ip-address": ip,
        **{f"driver.{driver}": "1" for driver in NODE_DRIVERS},
    }
    node = fill("Node", {
        "Attributes": attributes,
        "Datacenter": config.datacenter,
        "Drivers": drivers,
        "HTTPAddr": f"{ip}:4646",
        "ID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "Meta": {"connect.log_level": "info", **config.extra_node_meta},
        "Name": name,
        "NodePool": "default",
        "NodeResources": {
            "Cpu": {"CpuShares": NODE_CORE_MHZ * NODE_CPU_CORES, "ReservableCpuCores": list(range(NODE_CPU_CORES)),
                    "TotalCpuCores": NODE_CPU_CORES},
            "Disk": {"DiskMB": NODE_DISK_MB},
            "MaxDynamicPort": 32000,
            "Memory": {"MemoryMB": NODE_MEMORY_MB},
            "MinDynamicPort": 20000,
            "Networks": [{"CIDR": f"{ip}/32", "Device": "eth0", "IP": ip, "MBits": 1000, "Mode": "host"}],
        },
        "ReservedResources": blank("NodeReservedResources"),
        "SchedulingEligibility": ELIGIBLE,
        "Status": "initializing",
        "StatusUpdatedAt": now_ns() // SECOND,
    })
    assert node is not None
    return node
