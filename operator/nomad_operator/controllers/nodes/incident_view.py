"""`NodeIncidents`: the read-only view of node trouble that other controllers and the status page share.

The GitOps controller reports each job's health; a job at 2/3 because pi2 is unplugged is *degraded for a known
reason*, not failing, and its status should say which node and why the third instance cannot be placed. This view is
how it asks, without importing the node controller's internals:

    impact = incidents.job_impact("default", "whoami")   # None when no open incident touches the job
    if impact is not None and impact.degraded:
        message = impact.message   # "2/3 running (node pi2 down): 2/3 placed; 1 blocked by distinct_hosts: ..."

The hazard is a stale answer: impacts are computed from the informer cache at the moment of the call (a few dozen
objects on a Raspberry Pi cluster), so a replacement that started a millisecond ago is already counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nomad_operator.controllers.nodes.cluster_snapshot import ClusterSnapshot
from nomad_operator.controllers.nodes.cluster_view import JobRef
from nomad_operator.controllers.nodes.flapping import Hold
from nomad_operator.controllers.nodes.incidents import GroupCapacity, Incident, IncidentBook, JobImpact, assess_group
from nomad_operator.controllers.nodes.incidents import job_impacts as fold_impacts


class NodeIncidents:
    """Open node-down incidents, their effect on each job, and the nodes held by flap damping."""

    def __init__(
        self,
        book: IncidentBook,
        *,
        snapshot: Callable[[], ClusterSnapshot],
        held: Callable[[], dict[str, Hold]],
    ) -> None:
        self._book = book
        self._snapshot = snapshot
        self._held = held

    def open_incidents(self) -> list[Incident]:
        return self._book.open_incidents()

    def closed_incidents(self) -> list[Incident]:
        return self._book.history()

    def held_nodes(self) -> list[Hold]:
        return sorted(self._held().values(), key=lambda hold: hold.node_name)

    def group_capacities(self, snapshot: ClusterSnapshot | None = None) -> list[GroupCapacity]:
        view = snapshot if snapshot is not None else self._snapshot()
        names = view.node_names
        return [
            assess_group(
                job=view.jobs.get(ref),
                job_ref=ref,
                task_group=group,
                lost=lost,
                allocs=view.allocs_by_job.get(ref, []),
                evaluations=view.evals_by_job.get(ref, []),
                node_names=names,
                down_nodes=down,
            )
            for (ref, group), (lost, down) in sorted(self._book.affected().items())
        ]

    def job_impacts(self, snapshot: ClusterSnapshot | None = None) -> dict[JobRef, JobImpact]:
        """Every job an open incident touches, with its capacity outcome and reason."""
        return fold_impacts(self.group_capacities(snapshot))

    def job_impact(self, namespace: str, job_id: str) -> JobImpact | None:
        """How open node-down incidents affect this job, or None when none does."""
        if not self._book.open_incidents():
            return None
        return self.job_impacts().get(JobRef(namespace, job_id))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary for status, `nomad-operator status` and the dashboard."""
        return {
            "openIncidents": [_incident_json(incident) for incident in self.open_incidents()],
            "jobs": [
                {"namespace": ref.namespace, "job": ref.job_id, "desired": impact.desired, "running": impact.running,
                 "outcome": impact.outcome, "reason": impact.reason, "message": impact.message}
                for ref, impact in self.job_impacts().items()
            ],
            "heldNodes": [{"node": hold.node_name, "nodeID": hold.node_id, "flaps": hold.flaps, "reason": hold.reason}
                          for hold in self.held_nodes()],
        }  # fmt: skip


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "node": incident.node_name,
        "nodeID": incident.node_id,
        "startedAt": incident.started_at,
        "endedAt": incident.ended_at,
        "lost": {str(ref): count for ref, count in sorted(incident.lost_per_job().items())},
    }
