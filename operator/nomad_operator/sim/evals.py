"""The evaluation broker and plan applier: evaluations processed one at a time, in order, by the pure scheduler.

Nomad creates an evaluation for every change that may need placement (register, deregister, node update, alloc stop,
drain, failure) and a worker applies the scheduler's plan as one raft write, whose events are all typed `PlanResult`.
Placements that cannot be made leave FailedTGAllocs on the eval and one `blocked` eval per job ("created to place
remaining allocations") that is re-run when nodes or capacity change. The hazards: applying a plan must be a single
write (informers see allocations, job and deployment change together), evaluations of the same job must not
interleave, and building the scheduler's inputs must not scan every allocation per job more than once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nomad_operator.sim.encoding import blank, fill
from nomad_operator.sim.scheduler import AllocInfo, NodeInfo, Placement, Plan, PortInfo, compute_plan
from nomad_operator.sim.state import JobKey, StateStore, Write, alloc_terminal, now_ns, rfc3339

log = logging.getLogger(__name__)

BLOCKED_DESCRIPTION = "created to place remaining allocations"
RESCHEDULED_DESCRIPTION = "alloc was rescheduled because it failed"


class DeploymentPlanner(Protocol):
    """The deployment watcher's part in applying a plan: which deployment new allocations join."""

    def deployment_for_plan(self, txn: Write, job: Mapping[str, Any], plan: Plan) -> str: ...


def alloc_info(alloc: Mapping[str, Any]) -> AllocInfo:
    """The scheduler's view of an allocation, read from its wire form."""
    allocated = alloc.get("AllocatedResources") or {}
    cpu = memory = 0
    for task in (allocated.get("Tasks") or {}).values():
        cpu += (task.get("Cpu") or {}).get("CpuShares", 0)
        memory += (task.get("Memory") or {}).get("MemoryMB", 0)
    ports = tuple(
        PortInfo(label=port.get("Label", ""), value=port.get("Value", 0), to=port.get("To", 0),
                 host_ip=port.get("HostIP", ""))
        for port in (allocated.get("Shared") or {}).get("Ports") or []
    )
    transition = alloc.get("DesiredTransition") or {}
    return AllocInfo(
        id=alloc["ID"],
        namespace=alloc["Namespace"],
        job_id=alloc["JobID"],
        task_group=alloc["TaskGroup"],
        name=alloc["Name"],
        node_id=alloc["NodeID"],
        job_version=(alloc.get("Job") or {}).get("Version", 0),
        desired_status=alloc.get("DesiredStatus", "run"),
        client_status=alloc.get("ClientStatus", "pending"),
        cpu_mhz=cpu,
        memory_mb=memory,
        ports=ports,
        migrate=bool(transition.get("Migrate") or transition.get("Reschedule")),
    )


class EvalRunner:
    """Creates evaluations, queues them, runs the scheduler on each and applies the plan."""

    def __init__(
        self,
        store: StateStore,
        *,
        node_infos: Callable[[], list[NodeInfo]],
        rng: random.Random,
    ) -> None:
        self._store = store
        self._node_infos = node_infos
        self._rng = rng
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._purged: dict[JobKey, dict[str, Any]] = {}
        self._blocked: dict[JobKey, str] = {}
        self._info_cache: dict[str, tuple[int, AllocInfo]] = {}
        store.on_alloc_change(self._forget_terminal)
        self.deployments: DeploymentPlanner | None = None
        self.queued: dict[JobKey, dict[str, int]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-eval-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            eval_id = await self._queue.get()
            try:
                self._process(eval_id)
            except Exception:  # a bug in one eval must not stop the cluster
                log.exception("evaluation %s failed", eval_id)
                self._fail_eval(eval_id)
            if self._queue.empty():
                self._idle.set()
            await asyncio.sleep(0)

    # ---- creating -----------------------------------------------------------------------------------------------

    def create_eval(self, txn: Write, *, job: Mapping[str, Any], triggered_by: str, **fields: Any) -> dict[str, Any]:
        evaluation = {
            "ID": str(uuid.uuid4()),
            "JobID": job["ID"],
            "JobModifyIndex": job.get("JobModifyIndex", 0),
            "Namespace": job["Namespace"],
            "Priority": job.get("Priority", 50),
            "Status": "pending",
            "TriggeredBy": triggered_by,
            "Type": job.get("Type", "service"),
        }
        evaluation.update(fields)
        self._store.put_eval(txn, evaluation)
        return evaluation

    def enqueue(self, eval_id: str) -> None:
        self._idle.clear()
        self._queue.put_nowait(eval_id)

    def remember_purged(self, job: dict[str, Any]) -> None:
        """A purged job's last value, so its deregister eval can still stop its allocations."""
        self._purged[(job["Namespace"], job["ID"])] = job

    def unblock(self) -> int:
        """Re-run every blocked evaluation (nodes or capacity changed); returns how many."""
        if not self._blocked:
            return 0
        blocked, self._blocked = self._blocked, {}
        with self._store.write("EvaluationUpdated") as txn:
            for eval_id in blocked.values():
                evaluation = self._store.evals.get(eval_id)
                if evaluation is not None and evaluation["Status"] == "blocked":
                    self._store.put_eval(txn, dict(evaluation, Status="pending"))
        for eval_id in blocked.values():
            self.enqueue(eval_id)
        return len(blocked)

    def cancel_blocked(self, key: JobKey) -> None:
        eval_id = self._blocked.pop(key, None)
        evaluation = self._store.evals.get(eval_id or "")
        if evaluation is not None:
            with self._store.write("EvaluationUpdated") as txn:
                self._store.put_eval(txn, dict(evaluation, Status="canceled",
                                               StatusDescription="evaluation canceled by a newer one"))

    @property
    def blocked_count(self) -> int:
        return len(self._blocked)

    # ---- scheduling ---------------------------------------------------------------------------------------------

    def _forget_terminal(self, allocs: list[dict[str, Any]]) -> None:
        for alloc in allocs:
            if alloc_terminal(alloc):
                self._info_cache.pop(alloc["ID"], None)

    def _info(self, alloc: Mapping[str, Any]) -> AllocInfo:
        cached = self._info_cache.get(alloc["ID"])
        if cached is not None and cached[0] == alloc["ModifyIndex"]:
            return cached[1]
        info = alloc_info(alloc)
        self._info_cache[alloc["ID"]] = (alloc["ModifyIndex"], info)
        return info

    def _compute(self, job: Mapping[str, Any], *, failed_to_reschedule: frozenset[str] = frozenset()) -> Plan:
        store = self._store
        key = (job["Namespace"], job["ID"])
        mine = store.allocs_by_job.get(key, set())
        job_allocs = []
        for alloc_id in mine:
            info = self._info(store.allocs[alloc_id])
            if alloc_id in failed_to_reschedule:
                info = dataclasses.replace(info, migrate=True)
            job_allocs.append(info)
        # What the nodes hold comes from the store's running totals: an evaluation never walks other jobs' allocations.
        return compute_plan(
            job,
            job_version=job.get("Version", 0),
            nodes=self._node_infos(),
            job_allocs=job_allocs,
            node_usage=store.node_usage.usage,
            rng=self._rng,
            job_versions={version["Version"]: version for version in store.job_versions.get(key, [])},
        )

    def dry_run(self, job: Mapping[str, Any]) -> Plan:
        return self._compute(job)

    def _reschedulable(self, job: Mapping[str, Any], key: JobKey) -> frozenset[str]:
        """Failed allocations whose group reschedules and that were not replaced yet."""
        groups = {group["Name"]: group for group in job.get("TaskGroups") or []}
        result = set()
        for alloc in self._store.allocs_of_job(key):
            policy = (groups.get(alloc["TaskGroup"]) or {}).get("ReschedulePolicy")
            if (
                alloc.get("ClientStatus") == "failed"
                and alloc.get("DesiredStatus") == "run"
                and not alloc.get("NextAllocation")
                and policy
                and (policy.get("Unlimited") or policy.get("Attempts", 0) > _attempts(alloc))
            ):
                result.add(alloc["ID"])
        return frozenset(result)

    def _process(self, eval_id: str) -> None:
        store = self._store
        evaluation = store.evals.get(eval_id)
        if evaluation is None or evaluation["Status"] not in ("pending", "blocked"):
            return
        key = (evaluation["Namespace"], evaluation["JobID"])
        job = store.jobs.get(key) or self._purged.get(key)
        if job is None:
            self._complete(evaluation, Plan())
            return
        failed = self._reschedulable(job, key)
        plan = self._compute(job, failed_to_reschedule=failed)
        if plan.placements or plan.stops or plan.in_place_updates:
            self._apply(evaluation, job, plan, rescheduled=failed)
        self._complete(evaluation, plan)
        if key in self._purged and not store.live_allocs & store.allocs_by_job.get(key, set()):
            self._purged.pop(key, None)

    def _apply(self, evaluation: dict[str, Any], job: Mapping[str, Any], plan: Plan, *,
               rescheduled: frozenset[str]) -> None:
        store = self._store
        with store.write("PlanResult") as txn:
            deployment_id = ""
            if self.deployments is not None and plan.placements:
                deployment_id = self.deployments.deployment_for_plan(txn, job, plan)
            now = now_ns()
            for stop in plan.stops:
                current = store.allocs.get(stop.alloc_id)
                if current is None:
                    continue
                alloc = dict(current, DesiredStatus="stop", AllocModifyIndex=txn.index, ModifyTime=now)
                alloc["DesiredDescription"] = RESCHEDULED_DESCRIPTION if stop.alloc_id in rescheduled else (
                    stop.description)
                if stop.client_status:
                    alloc["ClientStatus"] = stop.client_status
                    alloc["AllocStates"] = [*(alloc.get("AllocStates") or []),
                                            {"Field": 0, "Time": rfc3339(now), "Value": stop.client_status}]
                store.put_alloc(txn, alloc)
            for placement in plan.placements:
                alloc = self._new_alloc(txn, evaluation, job, placement, deployment_id=deployment_id, now=now)
                previous = store.allocs.get(placement.previous_alloc_id or "")
                if previous is not None:
                    store.put_alloc(txn, dict(previous, NextAllocation=alloc["ID"]))
                    if previous["ID"] in rescheduled:
                        tracker = previous.get("RescheduleTracker") or {"Events": [], "LastReschedule": ""}
                        alloc["RescheduleTracker"] = {
                            "Events": [*(tracker.get("Events") or []), {
                                "Delay": 0, "PrevAllocID": previous["ID"], "PrevNodeID": previous["NodeID"],
                                "RescheduleTime": now}],
                            "LastReschedule": "ok",
                        }
                store.put_alloc(txn, alloc)
            for alloc_id in plan.in_place_updates:
                current = store.allocs.get(alloc_id)
                if current is not None:
                    store.put_alloc(txn, dict(current, Job=job, AllocModifyIndex=txn.index, ModifyTime=now))
            store.put_eval(txn, dict(evaluation, DeploymentID=deployment_id or evaluation.get("DeploymentID", "")))

    def _new_alloc(self, txn: Write, evaluation: Mapping[str, Any], job: Mapping[str, Any], placement: Placement,
                   *, deployment_id: str, now: int) -> dict[str, Any]:
        group = next(g for g in job["TaskGroups"] if g["Name"] == placement.task_group)
        node = self._store.nodes.get(placement.node_id) or {}
        tasks: dict[str, Any] = {}
        task_resources: dict[str, Any] = {}
        for task in group.get("Tasks") or []:
            resources = task.get("Resources") or {}
            tasks[task["Name"]] = {
                "Cpu": {"CpuShares": resources.get("CPU", 0), "ReservedCores": None},
                "Devices": None,
                "Memory": {"MemoryMB": resources.get("MemoryMB", 0), "MemoryMaxMB": resources.get("MemoryMaxMB", 0)},
                "Networks": None,
            }
            task_resources[task["Name"]] = fill("Resources", {"CPU": resources.get("CPU", 0),
                                                              "MemoryMB": resources.get("MemoryMB", 0)})
        ports = [
            {key: value for key, value in
             {"HostIP": port.host_ip, "Label": port.label, "To": port.to, "Value": port.value}.items() if value}
            for port in placement.ports
        ]
        disk = (group.get("EphemeralDisk") or {}).get("SizeMB", 0)
        metrics = blank("AllocMetric")
        metrics.update(NodesEvaluated=len(self._store.nodes), NodesInPool=len(self._store.nodes),
                       NodePool=job.get("NodePool", "default"), AllocationTime=1000)
        alloc = {
            "AllocModifyIndex": txn.index,
            "AllocatedResources": {
                "Shared": {"DiskMB": disk, "Networks": None, "Ports": ports or None},
                "TaskLifecycles": {name: None for name in tasks},
                "Tasks": tasks,
            },
            "ClientStatus": "pending",
            "CreateTime": now,
            "DeploymentID": deployment_id,
            "DesiredStatus": "run",
            "EvalID": evaluation["ID"],
            "ID": str(uuid.uuid4()),
            "Job": job,
            "JobID": job["ID"],
            "Metrics": metrics,
            "ModifyTime": now,
            "Name": placement.name,
            "Namespace": job["Namespace"],
            "NodeID": placement.node_id,
            "NodeName": node.get("Name", ""),
            "PreviousAllocation": placement.previous_alloc_id or "",
            "Resources": fill("Resources", {"CPU": placement.cpu_mhz, "DiskMB": disk,
                                            "MemoryMB": placement.memory_mb}),
            "TaskGroup": placement.task_group,
            "TaskResources": task_resources,
        }
        return alloc

    def _complete(self, evaluation: dict[str, Any], plan: Plan) -> None:
        store = self._store
        key = (evaluation["Namespace"], evaluation["JobID"])
        self.queued[key] = dict(plan.queued_allocations)
        with store.write("EvaluationUpdated") as txn:
            current = store.evals.get(evaluation["ID"], evaluation)
            updated = dict(current, QueuedAllocations=dict(plan.queued_allocations) or None,
                           FailedTGAllocs=plan.failed_tg_allocs or None)
            if plan.failed_tg_allocs:
                if current.get("TriggeredBy") == "queued-allocs" or current["Status"] == "blocked":
                    updated["Status"] = "blocked"  # still cannot place: reblock the same eval
                    self._blocked[key] = current["ID"]
                else:
                    job = store.jobs.get(key) or {"ID": key[1], "Namespace": key[0]}
                    old = self._blocked.pop(key, None)
                    if old is not None and old in store.evals:
                        store.put_eval(txn, dict(store.evals[old], Status="canceled"))
                    blocked = self.create_eval(
                        txn, job=job, triggered_by="queued-allocs", Status="blocked",
                        StatusDescription=BLOCKED_DESCRIPTION, PreviousEval=current["ID"],
                        FailedTGAllocs=plan.failed_tg_allocs, QueuedAllocations=dict(plan.queued_allocations),
                    )
                    self._blocked[key] = blocked["ID"]
                    updated["BlockedEval"] = blocked["ID"]
                    updated["Status"] = "complete"
            else:
                updated["Status"] = "complete"
                if self._blocked.get(key) == current["ID"]:
                    self._blocked.pop(key)
            store.put_eval(txn, updated)

    def _fail_eval(self, eval_id: str) -> None:
        evaluation = self._store.evals.get(eval_id)
        if evaluation is not None:
            with self._store.write("EvaluationUpdated") as txn:
                self._store.put_eval(txn, dict(evaluation, Status="failed",
                                               StatusDescription="simulator scheduler error"))


def _attempts(alloc: Mapping[str, Any]) -> int:
    return len(((alloc.get("RescheduleTracker") or {}).get("Events")) or [])
