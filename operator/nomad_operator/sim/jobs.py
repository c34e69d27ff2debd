"""Jobs: register, deregister, plan, scale and evaluate with Nomad's rules, plus job status and summary upkeep.

The GitOps operator leans on every detail here: `EnforceIndex` conflicts (a 500 whose text starts with "Enforcing job
modify index"), an unchanged spec creating no version and no Job write but still an evaluation, the last six versions,
SubmitTime, PreserveCounts, Stop without purge, deleting an unknown job answering 200, and job Status following
Nomad's getJobStatus. The hazard is silent divergence from Nomad, so each rule cites its behaviour in a comment and
pure functions in `job_rules` (`job_status`, `job_summary`, `spec_changed`) carry the decisions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nomad_operator.sim.canonical import canonicalize_job
from nomad_operator.sim.diff import job_diff
from nomad_operator.sim.encoding import blank, fill
from nomad_operator.sim.errors import ApiError, bad_request, not_found, server_error
from nomad_operator.sim.job_rules import (
    is_periodic_or_parameterized,
    job_status,
    job_summary,
    spec_changed,
    validate_job,
)
from nomad_operator.sim.scheduler import Plan
from nomad_operator.sim.state import JobKey, StateStore, Write, alloc_terminal, now_ns


class EvalFactory(Protocol):
    """What jobs need from the evaluation runner."""

    def create_eval(
        self, txn: Write, *, job: Mapping[str, Any], triggered_by: str, **fields: Any
    ) -> dict[str, Any]: ...

    def enqueue(self, eval_id: str) -> None: ...

    def remember_purged(self, job: dict[str, Any]) -> None: ...

    def dry_run(self, job: Mapping[str, Any]) -> Plan: ...



class JobRegistry:
    """The job endpoints' logic over the state store."""

    def __init__(self, store: StateStore, evals: EvalFactory, *, region: str) -> None:
        self._store = store
        self._evals = evals
        self._region = region
        self.queued: dict[JobKey, dict[str, int]] = {}
        self.on_deregister: Callable[[JobKey], None] | None = None  # cancels deployments and blocked evals
        store.before_commit = self.refresh

    # ---- reads --------------------------------------------------------------------------------------------------

    def get(self, namespace: str, job_id: str) -> dict[str, Any]:
        job = self._store.jobs.get((namespace, job_id))
        if job is None:
            raise not_found("job not found")
        return job

    def stub(self, job: Mapping[str, Any]) -> dict[str, Any]:
        summary = self._store.job_summaries.get((job["Namespace"], job["ID"]))
        return {
            "CreateIndex": job["CreateIndex"],
            "Datacenters": job["Datacenters"],
            "ID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "JobSummary": summary,
            "ModifyIndex": job["ModifyIndex"],
            "Multiregion": job.get("Multiregion"),
            "Name": job["Name"],
            "Namespace": job["Namespace"],
            "NodePool": job.get("NodePool", ""),
            "ParameterizedJob": bool(job.get("ParameterizedJob")),
            "ParentID": job.get("ParentID", ""),
            "Periodic": bool((job.get("Periodic") or {}).get("Enabled")),
            "Priority": job["Priority"],
            "Status": job["Status"],
            "StatusDescription": job.get("StatusDescription", ""),
            "Stop": job["Stop"],
            "SubmitTime": job["SubmitTime"],
            "Type": job["Type"],
        }

    # ---- status upkeep ------------------------------------------------------------------------------------------

    def refresh(self, txn: Write) -> None:
        """Recompute status and summary of every job the write touched, inside the same write (same batch)."""
        store = self._store
        for key in txn.dirty_jobs:
            job = store.jobs.get(key)
            if job is None:
                continue
            allocs = store.allocs_of_job(key)
            status = job_status(job, allocs, store.evals_of_job(key), store.deployments_of_job(key))
            summary = job_summary(job, allocs, queued=self.queued.get(key, {}))
            previous = store.job_summaries.get(key)
            if previous is None or previous["Summary"] != summary["Summary"]:
                summary["CreateIndex"] = previous["CreateIndex"] if previous else txn.index
                summary["ModifyIndex"] = txn.index
                store.put_summary(txn, summary)
            if status != job["Status"]:
                updated = dict(job, Status=status, ModifyIndex=txn.index)
                store.put_job(txn, updated, new_version=False)

    # ---- writes -------------------------------------------------------------------------------------------------

    def register(self, body: Any, *, path_id: str | None, namespace: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise bad_request("Job must be specified")
        submitted = body["Job"]
        if not submitted.get("ID"):
            raise bad_request("Job ID hasn't been provided")
        if path_id is not None and submitted["ID"] != path_id:
            raise bad_request("Job ID does not match name")
        if not submitted.get("Namespace"):
            submitted = dict(submitted, Namespace=namespace)
        job = self.canonical(submitted)
        validate_job(job)
        key = (job["Namespace"], job["ID"])
        existing = self._store.jobs.get(key)
        self._enforce_index(body, existing)
        if body.get("PreserveCounts") and existing is not None:
            counts = {group["Name"]: group["Count"] for group in existing["TaskGroups"]}
            for group in job["TaskGroups"]:
                group["Count"] = counts.get(group["Name"], group["Count"])
        return self.store_job(job, existing=existing, submission=body.get("Submission"))

    def canonical(self, submitted: Mapping[str, Any]) -> dict[str, Any]:
        job = fill("Job", canonicalize_job(dict(submitted), region=self._region))
        assert job is not None
        return job

    @staticmethod
    def _enforce_index(body: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
        if not body.get("EnforceIndex"):
            return
        wanted = int(body.get("JobModifyIndex") or 0)
        prefix = f"Enforcing job modify index {wanted}"
        if wanted == 0 and existing is not None:
            raise server_error(f"{prefix}: job already exists")
        if wanted != 0 and existing is None:
            raise server_error(f"{prefix}: job does not exist")
        if existing is not None and existing["JobModifyIndex"] != wanted:
            raise server_error(f"{prefix}: job exists with conflicting job modify index: {existing['JobModifyIndex']}")

    def store_job(
        self, job: dict[str, Any], *, existing: Mapping[str, Any] | None, submission: Any = None
    ) -> dict[str, Any]:
        key = (job["Namespace"], job["ID"])
        store = self._store
        wants_eval = not is_periodic_or_parameterized(job)
        if existing is not None and not spec_changed(existing, job):
            # Unchanged spec: no new version and no Job write, but still an eval (EvalUpdateRequestType).
            eval_id, eval_index = "", 0
            if wants_eval:
                with store.write("EvaluationUpdated") as txn:
                    evaluation = self._evals.create_eval(txn, job=existing, triggered_by="job-register")
                eval_id, eval_index = evaluation["ID"], txn.index
                self._evals.enqueue(eval_id)
            return self._register_response(eval_id, eval_index, existing["ModifyIndex"], store.index)
        with store.write("JobRegistered") as txn:
            job["Version"] = existing["Version"] + 1 if existing is not None else 0
            job["CreateIndex"] = existing["CreateIndex"] if existing is not None else txn.index
            job["ModifyIndex"] = job["JobModifyIndex"] = txn.index
            job["SubmitTime"] = now_ns()
            job["Stable"] = False
            job["Status"] = "pending" if existing is None else existing["Status"]
            store.put_job(txn, job, new_version=True)
            if isinstance(submission, dict) and submission.get("Source") is not None:
                store.submissions[(key[0], key[1], job["Version"])] = {
                    "Format": submission.get("Format", ""),
                    "JobID": job["ID"],
                    "JobModifyIndex": txn.index,
                    "Namespace": job["Namespace"],
                    "Source": submission.get("Source", ""),
                    "Variables": submission.get("Variables", ""),
                    "VariableFlags": submission.get("VariableFlags"),
                    "Version": job["Version"],
                }
            txn.dirty_jobs.add(key)
        eval_id, eval_index = "", 0
        if wants_eval:
            # A separate write with the same raft index: the Job event and the Eval event arrive as two batches.
            with store.write("JobRegistered", same_index=True) as txn:
                evaluation = self._evals.create_eval(txn, job=job, triggered_by="job-register")
            eval_id, eval_index = evaluation["ID"], txn.index
            self._evals.enqueue(eval_id)
        return self._register_response(eval_id, eval_index, job["JobModifyIndex"], store.index)

    @staticmethod
    def _register_response(eval_id: str, eval_index: int, job_modify_index: int, index: int) -> dict[str, Any]:
        return {
            "EvalCreateIndex": eval_index,
            "EvalID": eval_id,
            "Index": index,
            "JobModifyIndex": job_modify_index,
            "KnownLeader": False,
            "LastContact": 0,
            "NextToken": "",
            "Warnings": "",
        }

    def deregister(self, namespace: str, job_id: str, *, purge: bool) -> dict[str, Any]:
        store = self._store
        key = (namespace, job_id)
        existing = store.jobs.get(key)
        response = blank("JobDeregisterResponse")
        if existing is None:
            response["Index"] = store.index  # deleting an unknown job is a 200 with an empty EvalID
            return response
        with store.write("JobDeregistered") as txn:
            stopped = dict(existing, Stop=True, ModifyIndex=txn.index, JobModifyIndex=txn.index)
            if purge:
                store.delete_job(txn, key)
                self._evals.remember_purged(stopped)
            else:
                store.put_job(txn, stopped, new_version=False)
                txn.dirty_jobs.add(key)
            evaluation = None
            if not is_periodic_or_parameterized(existing):
                evaluation = self._evals.create_eval(txn, job=stopped, triggered_by="job-deregister")
        if self.on_deregister is not None:
            self.on_deregister(key)
        if evaluation is not None:
            self._evals.enqueue(evaluation["ID"])
            response["EvalID"] = evaluation["ID"]
            response["EvalCreateIndex"] = txn.index
        response["JobModifyIndex"] = txn.index
        response["Index"] = txn.index
        return response

    def plan(self, body: Any, *, path_id: str, namespace: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise bad_request("Job must be specified")
        submitted = body["Job"]
        if not submitted.get("ID"):
            raise bad_request("Job must have a valid ID")
        if submitted["ID"] != path_id:
            raise bad_request("Job ID does not match")
        if not submitted.get("Namespace"):
            submitted = dict(submitted, Namespace=namespace)
        job = self.canonical(submitted)
        validate_job(job)
        existing = self._store.jobs.get((job["Namespace"], job["ID"]))
        if existing is not None:
            job["Version"] = existing["Version"] + (1 if spec_changed(existing, job) else 0)
        plan = self._evals.dry_run(job)
        updates = {group: dict(counts) for group, counts in plan.annotations.items()}
        response = blank("JobPlanResponse")
        response["Annotations"] = {
            "DesiredTGUpdates": {group: dict(blank("DesiredUpdates"), **counts) for group, counts in updates.items()},
            "PreemptedAllocs": None,
        }
        response["FailedTGAllocs"] = plan.failed_tg_allocs or None
        response["JobModifyIndex"] = existing["JobModifyIndex"] if existing is not None else 0
        response["Index"] = self._store.index
        if body.get("Diff"):
            response["Diff"] = job_diff(existing, job, updates=updates)
        return response

    def scale(self, namespace: str, job_id: str, body: Any) -> dict[str, Any]:
        existing = self._store.jobs.get((namespace, job_id))
        if not isinstance(body, dict):
            raise bad_request("Request body is empty")
        target = body.get("Target") or {}
        if target.get("Job") not in (None, job_id):
            raise bad_request("job ID in payload did not match URL")
        if existing is None:
            raise not_found("job not found")
        group_name = target.get("Group")
        job = copy.deepcopy(existing)
        groups = {group["Name"]: group for group in job["TaskGroups"]}
        if group_name not in groups:
            raise bad_request(f"task group {group_name!r} specified for scaling does not exist in job")
        if body.get("Count") is not None:
            groups[group_name]["Count"] = int(body["Count"])
        if body.get("JobModifyIndex"):
            self._enforce_index({"EnforceIndex": True, "JobModifyIndex": body["JobModifyIndex"]}, existing)
        return self.store_job(job, existing=existing)

    def scale_status(self, namespace: str, job_id: str) -> dict[str, Any]:
        job = self.get(namespace, job_id)
        allocs = self._store.allocs_of_job((namespace, job_id))
        groups: dict[str, Any] = {}
        for group in job["TaskGroups"]:
            mine = [alloc for alloc in allocs if alloc["TaskGroup"] == group["Name"] and not alloc_terminal(alloc)]
            groups[group["Name"]] = {
                "Desired": group["Count"],
                "Events": None,
                "Healthy": sum(1 for a in mine if (a.get("DeploymentStatus") or {}).get("Healthy") is True),
                "Placed": len(mine),
                "Running": sum(1 for a in mine if a.get("ClientStatus") == "running"),
                "Unhealthy": sum(1 for a in mine if (a.get("DeploymentStatus") or {}).get("Healthy") is False),
            }
        return {
            "JobCreateIndex": job["CreateIndex"],
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "JobStopped": job["Stop"],
            "Namespace": job["Namespace"],
            "TaskGroups": groups,
        }

    def evaluate(self, namespace: str, job_id: str, body: Any) -> dict[str, Any]:
        if isinstance(body, dict) and body.get("JobID") not in (None, "", job_id):
            raise bad_request("JobID not same as job name")
        job = self._store.jobs.get((namespace, job_id))
        if job is None:
            raise ApiError(500, "job not found")
        if is_periodic_or_parameterized(job):
            raise server_error("can't evaluate periodic job")
        with self._store.write("EvaluationUpdated") as txn:
            evaluation = self._evals.create_eval(txn, job=job, triggered_by="job-register")
        self._evals.enqueue(evaluation["ID"])
        return self._register_response(evaluation["ID"], txn.index, job["JobModifyIndex"], txn.index)

    def set_stable(self, namespace: str, job_id: str, version: int, stable: bool) -> int:
        """Mark a version stable (deployments do this when they succeed); returns the write index."""
        key = (namespace, job_id)
        store = self._store
        with store.write("JobRegistered") as txn:
            versions = store.job_versions.get(key, [])
            for position, job in enumerate(versions):
                if job["Version"] == version:
                    versions[position] = dict(job, Stable=stable)
            current = store.jobs.get(key)
            if current is not None and current["Version"] == version:
                store.put_job(txn, dict(current, Stable=stable, ModifyIndex=txn.index), new_version=False)
        return txn.index

    def revert(self, namespace: str, job_id: str, version: int) -> dict[str, Any]:
        key = (namespace, job_id)
        current = self.get(namespace, job_id)
        target = next((job for job in self._store.job_versions.get(key, []) if job["Version"] == version), None)
        if target is None:
            raise server_error(f"job {job_id!r} in namespace {namespace!r} at version {version} not found")
        job = copy.deepcopy(target)
        job["Stop"] = False
        return self.store_job(job, existing=current)
