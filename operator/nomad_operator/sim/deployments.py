"""Deployments of service jobs with an update block: created with a new version, driven by allocation health.

The GitOps controller reports rollout health from deployments (running, successful, failed) and relies on the job's
Stable flag and auto_revert. Nomad marks an allocation healthy once it has run for MinHealthyTime, counts healthy and
unhealthy allocations on the deployment in the same write, succeeds when every group reached DesiredTotal, fails on an
unhealthy allocation or the progress deadline, and with auto_revert registers the last stable version again. Timings
come from the job's update block scaled by the simulator's `deployment_time_scale`, so tests do not wait ten
seconds per allocation. Simplified: destructive updates are not paced by max_parallel; canaries are not simulated.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nomad_operator.durations import SECOND
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.scheduler import Plan
from nomad_operator.sim.state import JobKey, StateStore, Write, now_ns, rfc3339

ACTIVE = frozenset({"running", "paused", "initializing", "pending", "blocked", "unblocking"})


class JobVersions(Protocol):
    def set_stable(self, namespace: str, job_id: str, version: int, stable: bool) -> int: ...

    def revert(self, namespace: str, job_id: str, version: int) -> dict[str, Any]: ...


def wants_deployment(job: Mapping[str, Any]) -> bool:
    if job.get("Type") != "service" or job.get("Stop"):
        return False
    return any((group.get("Update") or {}).get("MaxParallel", 0) > 0 for group in job.get("TaskGroups") or [])


class DeploymentWatcher:
    def __init__(self, store: StateStore, config: SimConfig) -> None:
        self._store = store
        self._config = config
        self._timers: set[asyncio.TimerHandle] = set()
        self._health_scheduled: set[str] = set()
        self.jobs: JobVersions | None = None
        store.on_alloc_change(self._changed)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            if handle is not None:
                self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(max(delay, 0.0), run)
        self._timers.add(handle)

    # ---- creation -----------------------------------------------------------------------------------------------

    def deployment_for_plan(self, txn: Write, job: Mapping[str, Any], plan: Plan) -> str:
        """The deployment this plan's placements join: the version's active one, a new one, or none."""
        if not wants_deployment(job):
            return ""
        key = (job["Namespace"], job["ID"])
        placed: dict[str, int] = {}
        for placement in plan.placements:
            placed[placement.task_group] = placed.get(placement.task_group, 0) + 1
        existing = self._store.deployments_of_job(key)
        same_version = [d for d in existing if d["JobVersion"] == job["Version"]]
        if same_version:
            deployment = same_version[0]
            if deployment["Status"] not in ACTIVE:
                return ""
            groups = {name: dict(state) for name, state in deployment["TaskGroups"].items()}
            for name, count in placed.items():
                if name in groups:
                    groups[name]["PlacedAllocs"] += count
            self._store.put_deployment(txn, dict(deployment, TaskGroups=groups))
            return str(deployment["ID"])
        for older in existing:
            if older["Status"] in ACTIVE:
                self._store.put_deployment(txn, dict(older, Status="cancelled",
                                                     StatusDescription="Cancelled due to newer version of job"))
        deployment = self._new(job, placed)
        self._store.put_deployment(txn, deployment)
        deadline = max((state["ProgressDeadline"] for state in deployment["TaskGroups"].values()), default=0)
        if deadline:
            deployment_id = deployment["ID"]
            self._later(deadline / SECOND * self._config.deployment_time_scale,
                        lambda: self._fail(deployment_id, "Failed due to progress deadline"))
        return str(deployment["ID"])

    def _new(self, job: Mapping[str, Any], placed: Mapping[str, int]) -> dict[str, Any]:
        groups = {}
        for group in job["TaskGroups"]:
            update = group.get("Update") or {}
            if update.get("MaxParallel", 0) <= 0:
                continue
            deadline = int(update.get("ProgressDeadline") or 0)
            scaled = int(deadline * self._config.deployment_time_scale)
            groups[group["Name"]] = {
                "AutoPromote": bool(update.get("AutoPromote")),
                "AutoRevert": bool(update.get("AutoRevert")),
                "DesiredCanaries": 0,
                "DesiredTotal": group.get("Count", 1),
                "HealthyAllocs": 0,
                "PlacedAllocs": placed.get(group["Name"], 0),
                "PlacedCanaries": None,
                "ProgressDeadline": deadline,
                "Promoted": False,
                "RequireProgressBy": rfc3339(now_ns() + scaled) if deadline else None,
                "UnhealthyAllocs": 0,
            }
        return {
            "EvalPriority": job.get("Priority", 50),
            "ID": str(uuid.uuid4()),
            "IsMultiregion": False,
            "JobCreateIndex": job["CreateIndex"],
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "JobSpecModifyIndex": job["JobModifyIndex"],
            "JobVersion": job["Version"],
            "Namespace": job["Namespace"],
            "Status": "running",
            "StatusDescription": "Deployment is running",
            "TaskGroups": groups,
        }

    def cancel_for_job(self, key: JobKey, description: str = "Cancelled because job is stopped") -> None:
        active = [d for d in self._store.deployments_of_job(key) if d["Status"] in ACTIVE]
        if not active:
            return
        with self._store.write("DeploymentStatusUpdate") as txn:
            for deployment in active:
                self._store.put_deployment(txn, dict(deployment, Status="cancelled", StatusDescription=description))

    # ---- health -------------------------------------------------------------------------------------------------

    def _changed(self, allocs: list[dict[str, Any]]) -> None:
        for alloc in allocs:
            deployment = self._store.deployments.get(alloc.get("DeploymentID") or "")
            if deployment is None or deployment["Status"] not in ACTIVE or alloc.get("DeploymentStatus"):
                continue
            if alloc.get("ClientStatus") == "running" and alloc["ID"] not in self._health_scheduled:
                self._health_scheduled.add(alloc["ID"])
                group: dict[str, Any] = next((g for g in (alloc.get("Job") or {}).get("TaskGroups") or []
                              if g["Name"] == alloc["TaskGroup"]), {})
                wait = int((group.get("Update") or {}).get("MinHealthyTime") or 0) / SECOND
                healthy = functools.partial(self._set_health, alloc["ID"], True)
                self._later(wait * self._config.deployment_time_scale, healthy)
            elif alloc.get("ClientStatus") == "failed":
                alloc_id = alloc["ID"]
                asyncio.get_running_loop().call_soon(self._set_health, alloc_id, False)

    def _set_health(self, alloc_id: str, healthy: bool) -> None:
        store = self._store
        alloc = store.allocs.get(alloc_id)
        if alloc is None or alloc.get("DeploymentStatus"):
            return
        if healthy and (alloc.get("ClientStatus") != "running" or alloc.get("DesiredStatus") != "run"):
            return
        deployment = store.deployments.get(alloc.get("DeploymentID") or "")
        if deployment is None or deployment["Status"] not in ACTIVE:
            return
        with store.write("AllocationUpdated") as txn:
            status = {"Canary": False, "Healthy": healthy, "ModifyIndex": txn.index, "Timestamp": rfc3339()}
            store.put_alloc(txn, dict(alloc, DeploymentStatus=status))
            groups = {name: dict(state) for name, state in deployment["TaskGroups"].items()}
            state = groups.get(alloc["TaskGroup"])
            if state is not None:
                state["HealthyAllocs" if healthy else "UnhealthyAllocs"] += 1
            deployment = dict(deployment, TaskGroups=groups)
            store.put_deployment(txn, deployment)
        if not healthy:
            self._fail(deployment["ID"], "Failed due to unhealthy allocations")
        elif all(state["HealthyAllocs"] >= state["DesiredTotal"] for state in groups.values()):
            self._succeed(deployment["ID"])

    def _succeed(self, deployment_id: str) -> None:
        deployment = self._store.deployments.get(deployment_id)
        if deployment is None or deployment["Status"] not in ACTIVE:
            return
        with self._store.write("DeploymentStatusUpdate") as txn:
            self._store.put_deployment(txn, dict(deployment, Status="successful",
                                                 StatusDescription="Deployment completed successfully"))
        if self.jobs is not None:
            self.jobs.set_stable(deployment["Namespace"], deployment["JobID"], deployment["JobVersion"], True)

    def _fail(self, deployment_id: str, description: str) -> None:
        store = self._store
        deployment = store.deployments.get(deployment_id)
        if deployment is None or deployment["Status"] not in ACTIVE:
            return
        key = (deployment["Namespace"], deployment["JobID"])
        revert_to = None
        if any(state["AutoRevert"] for state in deployment["TaskGroups"].values()):
            stable = [job for job in store.job_versions.get(key, [])
                      if job["Stable"] and job["Version"] < deployment["JobVersion"]]
            if stable:
                revert_to = stable[0]["Version"]
                description += f" - rolling back to job version {revert_to}"
            else:
                description += " - no stable job version to auto revert to"
        with store.write("DeploymentStatusUpdate") as txn:
            store.put_deployment(txn, dict(deployment, Status="failed", StatusDescription=description))
        if revert_to is not None and self.jobs is not None:
            self.jobs.revert(key[0], key[1], revert_to)
