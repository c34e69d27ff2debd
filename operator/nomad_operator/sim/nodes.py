"""Simulated Nomad clients: registration, heartbeats that can be cut (unplug), down and disconnected nodes, drain and
scheduling eligibility.

The node controller exists for one situation: a Raspberry Pi loses power, Nomad marks it down 20-30 s later, its
allocations become lost and are replaced where constraints allow, and when it returns nothing moves back. The
simulator must reproduce the timing (TTL + grace after the last heartbeat), the event Types (`NodeRegistration`,
`NodeStreamEvent`, `NodeDrain`, `NodeEligibility`), node events ("Node heartbeat missed", last 10 kept), node-update
evaluations, and drain's rules and error texts. Heartbeats are timers inside the process (no HTTP), so a test can
unplug a node and watch exactly what an operator would see.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nomad_operator.durations import SECOND
from nomad_operator.sim.config import NODE_EVENTS_KEPT, SimConfig
from nomad_operator.sim.encoding import blank
from nomad_operator.sim.errors import ApiError, server_error
from nomad_operator.sim.node_records import ELIGIBLE, INELIGIBLE, build_node, node_event, node_info
from nomad_operator.sim.scheduler import NodeInfo
from nomad_operator.sim.state import StateStore, Write, alloc_terminal, client_terminal, now_ns, rfc3339


class EvalSink(Protocol):
    def create_eval(
        self, txn: Write, *, job: Mapping[str, Any], triggered_by: str, **fields: Any
    ) -> dict[str, Any]: ...

    def enqueue(self, eval_id: str) -> None: ...

    def unblock(self) -> int: ...


class NodeManager:
    """The simulated clients: each heartbeats until unplugged; the server side marks it down when the TTL runs out."""

    def __init__(self, store: StateStore, config: SimConfig, evals: EvalSink, *, rng: random.Random) -> None:
        self._store = store
        self._config = config
        self._evals = evals
        self._rng = rng
        self._unplugged: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._info_cache: tuple[int, list[NodeInfo]] = (-1, [])

    # ---- lookups ------------------------------------------------------------------------------------------------

    def node_infos(self) -> list[NodeInfo]:
        index = self._store.table_index["nodes"]
        if self._info_cache[0] != index:
            self._info_cache = (index, [node_info(node) for node in self._store.nodes.values()])
        return self._info_cache[1]

    def resolve(self, name_or_id: str) -> str:
        """A node ID from an ID, an ID prefix of 8+ characters, or a node name (the fault API accepts names)."""
        nodes = self._store.nodes
        if name_or_id in nodes:
            return name_or_id
        for node in nodes.values():
            if node["Name"] == name_or_id:
                return str(node["ID"])
        matches = [node_id for node_id in nodes if len(name_or_id) >= 8 and node_id.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        raise ApiError(404, "node not found")

    def is_unplugged(self, node_id: str) -> bool:
        return node_id in self._unplugged

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def register_all(self) -> None:
        for number, name in enumerate(self._config.names(), start=1):
            node = build_node(name=name, number=number, config=self._config, rng=self._rng)
            with self._store.write("NodeRegistration") as txn:
                node["Events"] = [node_event("Node registered", "Cluster", txn.index)]
                self._store.put_node(txn, node)
            self._later(self._config.node_ready, self._become_ready, node["ID"])

    def _later(self, delay: float, callback: Callable[[str], None], node_id: str) -> None:
        previous = self._timers.pop(node_id, None)
        if previous is not None:
            previous.cancel()
        self._timers[node_id] = asyncio.get_running_loop().call_later(delay, callback, node_id)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _update(self, node_id: str, event_type: str, changes: Mapping[str, Any], *,
                message: str | None = None, subsystem: str = "Cluster") -> dict[str, Any]:
        with self._store.write(event_type) as txn:
            node = dict(self._store.nodes[node_id], **changes)
            if message is not None:
                events = [*(node.get("Events") or []), node_event(message, subsystem, txn.index)]
                node["Events"] = events[-NODE_EVENTS_KEPT:]
            self._store.put_node(txn, node)
        return node

    def _become_ready(self, node_id: str) -> None:
        self._timers.pop(node_id, None)
        node = self._store.nodes.get(node_id)
        if node is None or node_id in self._unplugged or node["Status"] == "ready":
            return
        self._update(node_id, "NodeStreamEvent", {"Status": "ready", "StatusUpdatedAt": now_ns() // SECOND})
        self._reconnect_allocs(node_id)
        self.node_update_evals(node_id)
        self._evals.unblock()

    def _missed(self, node_id: str) -> None:
        """The heartbeat TTL plus grace ran out: down, or disconnected while an allocation's window allows."""
        self._timers.pop(node_id, None)
        node = self._store.nodes.get(node_id)
        if node is None or node_id not in self._unplugged or node["Status"] == "down":
            return
        window = 0.0 if node["Status"] == "disconnected" else self._disconnect_window(node_id)
        status = "disconnected" if window > 0 else "down"
        self._update(node_id, "NodeStreamEvent", {"Status": status, "StatusUpdatedAt": now_ns() // SECOND},
                     message="Node heartbeat missed")
        if status == "disconnected":
            self._mark_unknown(node_id)
            self._later(window, self._missed, node_id)
        self.node_update_evals(node_id)

    def _reconnect_allocs(self, node_id: str) -> None:
        """A disconnected client that comes back reports its still-wanted allocations as running again."""
        back = [alloc for alloc in self._store.allocs_of_node(node_id)
                if alloc.get("ClientStatus") == "unknown" and alloc.get("DesiredStatus") == "run"]
        if not back:
            return
        with self._store.write("AllocationUpdated") as txn:
            for alloc in back:
                self._store.put_alloc(txn, dict(alloc, ClientStatus="running", AllocStates=[
                    *(alloc.get("AllocStates") or []), {"Field": 0, "Time": rfc3339(), "Value": "running"}]))

    def _disconnect_window(self, node_id: str) -> float:
        longest = 0
        for alloc in self._store.allocs_of_node(node_id):
            if alloc_terminal(alloc):
                continue
            group: dict[str, Any] = next((g for g in (alloc.get("Job") or {}).get("TaskGroups") or []
                          if g["Name"] == alloc["TaskGroup"]), {})
            disconnect = group.get("Disconnect") or {}
            longest = max(longest, int(disconnect.get("LostAfter") or 0))
        return longest / SECOND

    def _mark_unknown(self, node_id: str) -> None:
        with self._store.write("PlanResult") as txn:
            for alloc in self._store.allocs_of_node(node_id):
                if not alloc_terminal(alloc):
                    self._store.put_alloc(txn, dict(alloc, ClientStatus="unknown", AllocStates=[
                        *(alloc.get("AllocStates") or []), {"Field": 0, "Time": rfc3339(), "Value": "unknown"}]))

    def node_update_evals(self, node_id: str, *, triggered_by: str = "node-update") -> list[str]:
        """One eval per job with allocations on the node, plus every system job (nomad/node_endpoint.go)."""
        store = self._store
        keys = {(alloc["Namespace"], alloc["JobID"]) for alloc in store.allocs_of_node(node_id)}
        keys |= {key for key, job in store.jobs.items() if job["Type"] in ("system", "sysbatch")}
        jobs = [store.jobs[key] for key in sorted(keys) if key in store.jobs]
        if not jobs:
            return []
        node = store.nodes[node_id]
        with store.write("EvaluationUpdated") as txn:
            created = [
                self._evals.create_eval(txn, job=job, triggered_by=triggered_by, NodeID=node_id,
                                        NodeModifyIndex=node["ModifyIndex"])
                for job in jobs
            ]
        for evaluation in created:
            self._evals.enqueue(evaluation["ID"])
        return [evaluation["ID"] for evaluation in created]

    # ---- faults -------------------------------------------------------------------------------------------------

    def unplug(self, name_or_id: str) -> str:
        """Stop the node's heartbeats: it goes down after TTL + grace, as a powered-off Pi does."""
        node_id = self.resolve(name_or_id)
        self._unplugged.add(node_id)
        self._later(self._config.heartbeat_ttl + self._config.heartbeat_grace, self._missed, node_id)
        return node_id

    def plug(self, name_or_id: str) -> str:
        """Resume heartbeats; a down or disconnected node re-registers (initializing, then ready)."""
        node_id = self.resolve(name_or_id)
        self._unplugged.discard(node_id)
        timer = self._timers.pop(node_id, None)
        if timer is not None:
            timer.cancel()
        if self._store.nodes[node_id]["Status"] in ("down", "disconnected"):
            self._update(node_id, "NodeStreamEvent", {"Status": "initializing", "StatusUpdatedAt": now_ns() // SECOND},
                         message="Node reregistered by heartbeat")
            self._later(self._config.node_ready, self._become_ready, node_id)
        elif self._store.nodes[node_id]["Status"] == "initializing":
            self._later(self._config.node_ready, self._become_ready, node_id)
        return node_id

    # ---- drain and eligibility ----------------------------------------------------------------------------------

    def _existing(self, node_id: str) -> dict[str, Any]:
        node = self._store.nodes.get(node_id)
        if node is None:
            raise server_error("node not found")
        return node

    def drain(self, node_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        node = self._existing(node_id)
        spec = body.get("DrainSpec")
        now = now_ns()
        if spec is not None and not isinstance(spec, dict):
            raise ApiError(400, "DrainSpec must be an object")
        if spec is not None:
            deadline = int(spec.get("Deadline") or 0)
            force = rfc3339(now) if deadline < 0 else rfc3339(now + deadline) if deadline > 0 else None
            previous = node.get("LastDrain") or {}
            changes: dict[str, Any] = {
                "DrainStrategy": {"Deadline": deadline, "ForceDeadline": force,
                                  "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs")),
                                  "StartedAt": rfc3339(now)},
                "SchedulingEligibility": INELIGIBLE,
                "LastDrain": {"AccessorID": "", "Meta": body.get("Meta"),
                              "StartedAt": previous.get("StartedAt") if node["DrainStrategy"] else rfc3339(now),
                              "Status": "draining", "UpdatedAt": rfc3339(now)},
            }
            message = "Node drain strategy updated" if node["DrainStrategy"] else "Node drain strategy set"
        else:
            last = dict(node.get("LastDrain") or {}, Status="canceled", UpdatedAt=rfc3339(now))
            changes = {"DrainStrategy": None, "LastDrain": last if node.get("LastDrain") else None}
            if body.get("MarkEligible"):
                changes["SchedulingEligibility"] = ELIGIBLE
            message = "Node drain disabled"
        changes["Drain"] = changes["DrainStrategy"] is not None
        updated = self._update(node_id, "NodeDrain", changes, message=message, subsystem="Drain")
        eval_ids: list[str] = []
        if spec is not None:
            eval_ids = self.migrate_allocs(node_id)
        elif changes.get("SchedulingEligibility") == ELIGIBLE:
            self._evals.unblock()
        return {"EvalCreateIndex": self._store.index if eval_ids else 0, "EvalIDs": eval_ids or None,
                "Index": self._store.index, "NodeModifyIndex": updated["ModifyIndex"]}

    def migrate_allocs(self, node_id: str) -> list[str]:
        """The drainer: mark the node's service and batch allocations for migration, then evaluate their jobs."""
        store = self._store
        targets = [alloc for alloc in store.allocs_of_node(node_id)
                   if not alloc_terminal(alloc) and (alloc.get("Job") or {}).get("Type") not in ("system", "sysbatch")
                   and not (alloc.get("DesiredTransition") or {}).get("Migrate")]
        if not targets:
            self.check_drain_complete(node_id)
            return []
        keys = sorted({(alloc["Namespace"], alloc["JobID"]) for alloc in targets})
        with store.write("AllocationUpdateDesiredStatus") as txn:
            for alloc in targets:
                transition = dict(blank("DesiredTransition"), **(alloc.get("DesiredTransition") or {}), Migrate=True)
                store.put_alloc(txn, dict(alloc, DesiredTransition=transition, AllocModifyIndex=txn.index))
            created = [self._evals.create_eval(txn, job=store.jobs[key], triggered_by="node-drain", NodeID=node_id)
                       for key in keys if key in store.jobs]
        for evaluation in created:
            self._evals.enqueue(evaluation["ID"])
        return [evaluation["ID"] for evaluation in created]

    def check_drain_complete(self, node_id: str) -> None:
        node = self._store.nodes.get(node_id)
        if node is None or node.get("DrainStrategy") is None:
            return
        ignore_system = node["DrainStrategy"].get("IgnoreSystemJobs")
        allocs = self._store.allocs_of_node(node_id)
        # Like Nomad's drainer (drainingNode.IsDone): done once the clients have stopped the service and batch
        # allocations, not as soon as the server asked them to stop.
        if any(not client_terminal(alloc) and (alloc.get("Job") or {}).get("Type") not in ("system", "sysbatch")
               for alloc in allocs):
            return
        remaining = [alloc for alloc in allocs if not alloc_terminal(alloc)]
        if remaining and not ignore_system:
            with self._store.write("PlanResult") as txn:
                for alloc in remaining:
                    self._store.put_alloc(txn, dict(alloc, DesiredStatus="stop", AllocModifyIndex=txn.index,
                                                    DesiredDescription="alloc not needed as node is tainted"))
        last = dict(node.get("LastDrain") or {}, Status="complete", UpdatedAt=rfc3339())
        self._update(node_id, "NodeDrain", {"DrainStrategy": None, "Drain": False, "LastDrain": last},
                     message="Node drain complete", subsystem="Drain")

    def draining_nodes(self) -> list[str]:
        return [node_id for node_id, node in self._store.nodes.items() if node.get("DrainStrategy") is not None]

    def set_eligibility(self, node_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        node = self._existing(node_id)
        value = body.get("Eligibility")
        if value not in (ELIGIBLE, INELIGIBLE):
            raise server_error(f"invalid scheduling eligibility {value!r}".replace("'", '"'))
        if value == ELIGIBLE and node.get("DrainStrategy") is not None:
            raise server_error("can not set node's scheduling eligibility to eligible while it is draining")
        message = f"Node marked as {value} for scheduling"
        updated = self._update(node_id, "NodeEligibility", {"SchedulingEligibility": value}, message=message)
        eval_ids: list[str] = []
        if value == ELIGIBLE:
            eval_ids = self.node_update_evals(node_id)
            self._evals.unblock()
        return {"EvalCreateIndex": self._store.index if eval_ids else 0, "EvalIDs": eval_ids or None,
                "Index": self._store.index, "NodeModifyIndex": updated["ModifyIndex"]}

    def evaluate(self, node_id: str) -> dict[str, Any]:
        self._existing(node_id)
        eval_ids = self.node_update_evals(node_id)
        return {"EvalCreateIndex": self._store.index, "EvalIDs": eval_ids or None, "Index": self._store.index,
                "NodeModifyIndex": self._store.nodes[node_id]["ModifyIndex"]}
