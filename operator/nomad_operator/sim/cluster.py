"""The simulated cluster: one object that wires the store, broker, nodes, evaluations, clients, deployments, services
and variables together, and the in-process fault API that tests call directly.

Tests and the demo need one handle with a small surface: unplug and plug a node, cut event streams, inject faults,
fail a job, read stats and a state dump, and wait until the scheduler is idle. The hazard is start-up and shutdown
order: timers and the eval worker need a running loop, and nothing may outlive `close()`, or a test leaks tasks into
the next one.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from typing import Any

from nomad_operator.sim.clients import ClientSimulator
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.deployments import DeploymentWatcher
from nomad_operator.sim.evals import EvalRunner
from nomad_operator.sim.events import EventBroker
from nomad_operator.sim.faults import FaultInjector, RequestStats
from nomad_operator.sim.jobs import JobRegistry
from nomad_operator.sim.nodes import NodeManager
from nomad_operator.sim.services import ServiceCatalog
from nomad_operator.sim.state import StateStore, alloc_terminal, rfc3339
from nomad_operator.sim.variables import VariableStore


class ManagementToken:
    """The one ACL token of a simulator started with ACLs on (a bootstrap management token)."""

    def __init__(self, rng: random.Random) -> None:
        self.accessor_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.secret_id = str(uuid.UUID(int=int.from_bytes(secrets.token_bytes(16)), version=4))
        self.create_time = rfc3339()

    def to_wire(self) -> dict[str, Any]:
        # ACLToken has its own MarshalJSON: declaration order, no Hash, duration as a string.
        return {"AccessorID": self.accessor_id, "SecretID": self.secret_id, "Name": "Bootstrap Token",
                "Type": "management", "Policies": None, "Roles": None, "Global": True,
                "CreateTime": self.create_time, "ExpirationTime": None, "ExpirationTTL": "",
                "CreateIndex": 1, "ModifyIndex": 1}


class SimCluster:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.broker = EventBroker(buffer_size=config.event_buffer_size)
        self.store = StateStore(self.broker)
        self.evals = EvalRunner(self.store, node_infos=lambda: self.nodes.node_infos(), rng=self.rng)
        self.nodes = NodeManager(self.store, config, self.evals, rng=self.rng)
        self.jobs = JobRegistry(self.store, self.evals, region=config.region)
        self.evals.queued = self.jobs.queued
        self.clients = ClientSimulator(self.store, config, is_unplugged=self.nodes.is_unplugged)
        self.deployments = DeploymentWatcher(self.store, config)
        self.deployments.jobs = self.jobs
        self.evals.deployments = self.deployments
        self.services = ServiceCatalog(self.store)
        self.variables = VariableStore(self.store, time_scale=config.lock_time_scale)
        self.faults = FaultInjector(seed=config.seed)
        self.stats = RequestStats()
        self.token = ManagementToken(self.rng) if config.acl else None
        self.clients.on_failed = self._reschedule_failed
        self.jobs.on_deregister = self._job_deregistered
        self.store.on_alloc_change(self._after_alloc_change)
        self.store.namespaces["default"] = {"Capabilities": None, "ConsulConfiguration": None, "CreateIndex": 1,
                                            "Description": "Default shared namespace", "Meta": None,
                                            "ModifyIndex": 1, "Name": "default", "NodePoolConfiguration": None,
                                            "OptionalExtraClaims": None, "Quota": "", "RequiredExtraClaims": None,
                                            "VaultConfiguration": None}
        self._started = False

    @property
    def management_token(self) -> str | None:
        return self.token.secret_id if self.token is not None else None

    async def start(self) -> None:
        self.evals.start()
        self.nodes.register_all()
        self._started = True

    async def close(self) -> None:
        self.broker.close_all()
        self.nodes.stop()
        self.clients.stop()
        self.deployments.stop()
        self.variables.stop()
        await self.evals.stop()

    # ---- reactions ----------------------------------------------------------------------------------------------

    def _after_alloc_change(self, allocs: list[dict[str, Any]]) -> None:
        """Capacity freed (an allocation ended) re-runs blocked evals; drains complete when their nodes empty."""
        if any(alloc_terminal(alloc) for alloc in allocs):
            loop = asyncio.get_running_loop()
            if self.evals.blocked_count:
                loop.call_soon(self.evals.unblock)
            draining = {alloc["NodeID"] for alloc in allocs} & set(self.nodes.draining_nodes())
            for node_id in draining:
                loop.call_soon(self.nodes.check_drain_complete, node_id)

    def _job_deregistered(self, key: tuple[str, str]) -> None:
        self.deployments.cancel_for_job(key)
        self.evals.cancel_blocked(key)

    def _reschedule_failed(self, namespace: str, job_id: str) -> None:
        job = self.store.jobs.get((namespace, job_id))
        if job is None:
            return
        with self.store.write("EvaluationUpdated") as txn:
            evaluation = self.evals.create_eval(txn, job=job, triggered_by="alloc-failure")
        self.evals.enqueue(evaluation["ID"])

    # ---- the in-process fault API -------------------------------------------------------------------------------

    def unplug(self, node: str) -> str:
        """Stop a node's heartbeats (by name or ID); it goes down after heartbeat TTL + grace."""
        return self.nodes.unplug(node)

    def plug(self, node: str) -> str:
        return self.nodes.plug(node)

    def cut_streams(self) -> int:
        return self.broker.close_all()

    def inject_fault(self, spec: dict[str, Any]) -> None:
        self.faults.add(spec)

    def clear_faults(self) -> int:
        return self.faults.clear()

    def fail_job(self, job_id: str, *, namespace: str = "default") -> int:
        return self.clients.fail_job(namespace, job_id)

    def stats_snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot()

    async def wait_idle(self) -> None:
        """Until the eval queue is empty (tests still poll for client-side transitions)."""
        await self.evals.wait_idle()

    def state_dump(self) -> dict[str, Any]:
        store = self.store
        return {
            "Index": store.index,
            "Nodes": [{"ID": n["ID"], "Name": n["Name"], "Status": n["Status"],
                       "SchedulingEligibility": n["SchedulingEligibility"], "Drain": n["DrainStrategy"] is not None,
                       "Unplugged": self.nodes.is_unplugged(n["ID"])} for n in store.nodes.values()],
            "Jobs": [{"ID": j["ID"], "Namespace": j["Namespace"], "Version": j["Version"], "Status": j["Status"],
                      "Stop": j["Stop"]} for j in store.jobs.values()],
            "Allocations": [{"ID": a["ID"], "Name": a["Name"], "NodeID": a["NodeID"], "JobID": a["JobID"],
                             "DesiredStatus": a.get("DesiredStatus"), "ClientStatus": a.get("ClientStatus")}
                            for a in store.allocs.values()],
            "Evaluations": [{"ID": e["ID"], "JobID": e["JobID"], "Status": e["Status"],
                             "TriggeredBy": e.get("TriggeredBy")} for e in store.evals.values()],
            "Deployments": [{"ID": d["ID"], "JobID": d["JobID"], "Status": d["Status"]}
                            for d in store.deployments.values()],
            "Services": len(store.services),
            "Variables": len(store.variables),
            "EventSubscribers": self.broker.subscriber_count,
            "BlockedEvals": self.evals.blocked_count,
        }
