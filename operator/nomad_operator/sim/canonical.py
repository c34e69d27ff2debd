"""Registration-time canonicalization of a job, the way a Nomad server stores it.

A job read back from Nomad is never the job that was sent, and the GitOps operator compares the two, so a simulator
that stored jobs as sent would hide every spurious diff a real cluster shows. A register goes through two halves in
Nomad, and so it does here:
- the HTTP agent fills the region with its own and converts the api job to the server's structs, calling the api
  package's `Canonicalize` on the way (api/jobs.go, api/tasks.go...). That half is
  `nomad_operator.jobspec.canonicalize`, the same transcription `/v1/jobs/parse` with Canonicalize=true answers
  with: one canonicalizer, so the spec hash, the parse endpoint and the stored job cannot drift apart;
- the server's admission hooks and `structs.Job.Canonicalize` then add their own defaults (nomad/job_endpoint_hooks.go
  jobCanonicalizer, jobNodePoolMutatingHook; nomad/structs/structs.go), which live in this module.

The hazard is drift between the two halves: anything the api half already fills must not be re-decided here. This
module is pure and returns a new job; the store completes its key set afterwards from the wire shapes.
"""

from __future__ import annotations

from typing import Any, cast

from nomad_operator.jobspec import Value, canonicalize
from nomad_operator.sim.encoding import blank, struct_form

DEFAULT_NAMESPACE = "default"
DEFAULT_NODE_POOL = "default"
ALL_DATACENTERS = ["*"]  # jobCanonicalizer: a job without datacenters may run in any
JOB_TYPES = frozenset({"service", "batch", "system", "sysbatch"})
# Task groups of system jobs run once per node: structs.TaskGroup.Canonicalize sets a zero count to 1.
SYSTEM_TYPES = frozenset({"system", "sysbatch"})


def canonicalize_job(job: dict[str, Any], *, region: str) -> dict[str, Any]:
    """A new job with the api defaults (`jobspec.canonicalize`) and then the server's filled in; `job` is unchanged."""
    submitted = dict(job)
    if not submitted.get("Region"):
        submitted["Region"] = region  # the HTTP agent puts its own region on a job that names none
    result = cast(dict[str, Any], canonicalize(cast(dict[str, Value], submitted)))
    _to_structs(result)
    _server_defaults(result)
    return result


def _to_structs(job: dict[str, Any]) -> None:
    """The api -> structs conversion of the HTTP agent (command/agent/job_endpoint.go ApiJobToStructJob), where it
    shows on the wire: unset plain fields become their zero values, and the job-level update keeps only Stagger and
    MaxParallel (the rest was merged into the groups by the api half), and only when MaxParallel is above 0."""
    update = job.get("Update")
    kept = {"Stagger": 0, "MaxParallel": 0}
    if isinstance(update, dict) and (update.get("MaxParallel") or 0) > 0:
        kept = {"Stagger": update.get("Stagger") or 0, "MaxParallel": update["MaxParallel"]}
    job["Update"] = dict(blank("UpdateStrategy"), **kept)
    struct_form("Job", job)


def _server_defaults(job: dict[str, Any]) -> None:
    """What the server adds to an already api-canonicalized job (structs.Job.Canonicalize and admission hooks)."""
    if not job.get("Namespace"):
        job["Namespace"] = DEFAULT_NAMESPACE
    if not job.get("Datacenters"):
        job["Datacenters"] = list(ALL_DATACENTERS)
    if not job.get("NodePool"):
        job["NodePool"] = DEFAULT_NODE_POOL  # the namespace's default pool, which is "default" here
    for group in job.get("TaskGroups") or []:
        if job.get("Type") in SYSTEM_TYPES and not group.get("Count"):
            group["Count"] = 1
