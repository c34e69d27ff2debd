"""Service registrations of running allocations, served under `/v1/services` like Nomad's native service discovery.

Nomad registers `provider = "nomad"` services when an allocation's tasks run and removes them when it stops, with the
node's address and the allocation's port. The seed cluster's jobs use `provider = "consul"` and fabio routes them;
no Consul exists here, so consul services are registered in the same catalog too, which lets tests see what fabio
would route (a deliberate difference from Nomad, which would hand them to Consul). The hazard handled is a stale
catalog: registration follows allocation state on every change, and deregistration happens on any terminal state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from nomad_operator.sim.state import StateStore, alloc_terminal


def service_id(alloc_id: str, owner: str, name: str, port_label: str) -> str:
    """Nomad's ID: `_nomad-task-<alloc>-<task or group-<group>>-<service>-<port>`."""
    return f"_nomad-task-{alloc_id}-{owner}-{name}-{port_label}"


def registrations_for(alloc: Mapping[str, Any], node: Mapping[str, Any]) -> list[dict[str, Any]]:
    job = alloc.get("Job") or {}
    group = next((g for g in job.get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), None)
    if group is None:
        return []
    address = (node.get("Attributes") or {}).get("unique.network.ip-address", "")
    ports = {port.get("Label"): port for port in
             ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []}
    owners: list[tuple[str, dict[str, Any]]] = [(f"group-{group['Name']}", service)
                                                 for service in group.get("Services") or []]
    for task in group.get("Tasks") or []:
        owners.extend((task["Name"], service) for service in task.get("Services") or [])
    result = []
    for owner, service in owners:
        label = service.get("PortLabel") or ""
        port = ports.get(label) or {}
        value = port.get("Value", 0)
        if not value and label.isdigit():
            value = int(label)
        result.append({
            "Address": port.get("HostIP") or address,
            "AllocID": alloc["ID"],
            "Datacenter": node.get("Datacenter", ""),
            "ID": service_id(alloc["ID"], owner, service.get("Name", ""), label),
            "JobID": alloc["JobID"],
            "Namespace": alloc["Namespace"],
            "NodeID": alloc["NodeID"],
            "Port": value,
            "ServiceName": service.get("Name", ""),
            "Tags": list(service.get("Tags") or []) or None,
        })
    return result


class ServiceCatalog:
    def __init__(self, store: StateStore) -> None:
        self._store = store
        store.on_alloc_change(self._changed)

    def _changed(self, allocs: list[dict[str, Any]]) -> None:
        register = [alloc["ID"] for alloc in allocs
                    if alloc.get("ClientStatus") == "running" and not alloc_terminal(alloc)
                    and not self._store.services_by_alloc.get(alloc["ID"])]
        remove = [alloc["ID"] for alloc in allocs
                  if alloc_terminal(alloc) and self._store.services_by_alloc.get(alloc["ID"])]
        if register or remove:
            asyncio.get_running_loop().call_soon(self._apply, register, remove)

    def _apply(self, register: list[str], remove: list[str]) -> None:
        store = self._store
        if register:
            with store.write("ServiceRegistration") as txn:
                for alloc_id in register:
                    alloc = store.allocs.get(alloc_id)
                    if alloc is None or alloc_terminal(alloc) or store.services_by_alloc.get(alloc_id):
                        continue
                    node = store.nodes.get(alloc["NodeID"], {})
                    for registration in registrations_for(alloc, node):
                        store.put_service(txn, registration)
        if remove:
            with store.write("ServiceDeregistration") as txn:
                for alloc_id in remove:
                    for service in list(store.services_by_alloc.get(alloc_id, ())):
                        store.delete_service(txn, service)

    def by_name(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [reg for reg in self._store.services.values()
                if reg["ServiceName"] == name and namespace in ("*", reg["Namespace"])]

    def stubs(self, namespace: str) -> list[dict[str, Any]]:
        by_namespace: dict[str, dict[str, set[str]]] = {}
        for reg in self._store.services.values():
            if namespace not in ("*", reg["Namespace"]):
                continue
            tags = by_namespace.setdefault(reg["Namespace"], {}).setdefault(reg["ServiceName"], set())
            tags.update(reg.get("Tags") or [])
        return [{"Namespace": ns, "Services": [{"ServiceName": name, "Tags": sorted(tags)}
                                               for name, tags in sorted(services.items())]}
                for ns, services in sorted(by_namespace.items())]
