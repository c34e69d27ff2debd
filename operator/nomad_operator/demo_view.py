"""What the demo shows: a snapshot of the cluster and the operator, the changes between two snapshots, the screen.

The demo reads two views of the same cluster and must not confuse them. The operator's `/status` says what it
applied (sync state, revisions), but it is published at the end of a sync cycle, so during a long first sync it is
empty, and its health lags until the operator looks again. The simulator's API says what runs now. So sync comes from
the operator (the leader's document), and health is computed here from the live jobs, allocations, deployments and
evaluations with the operator's own rule (`controllers.gitops.health.job_health`), so both name a blocked placement
the same way ("2/3 running; 1 placement blocked: distinct_hosts"). All of it is pure: parsed JSON in, text out, so
the whole display is tested without a process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nomad_operator.controllers.gitops.health import job_health

NO_REVISION = "-"
SHORT_SHA = 12
SYNCED = "Synced"
HEALTHY = "Healthy"
STANDBY_REASON = "Standby"


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    status: str  # initializing, ready, down, disconnected
    eligible: bool = True
    draining: bool = False

    def label(self) -> str:
        extra = [word for word, on in (("ineligible", not self.eligible), ("draining", self.draining)) if on]
        return f"{self.status} ({', '.join(extra)})" if extra else self.status


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    version: int
    sync: str  # from the operator's status; "-" before it has reported
    health: str  # Healthy, Progressing, Degraded, Missing
    message: str
    running: int
    expected: int
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplicaReading:
    """What one operator replica answered: its `/status` document (None when unreachable) and leadership."""

    name: str
    address: str
    status: Mapping[str, Any] | None
    leader: bool | None  # from its /metrics; None when unknown


@dataclass(frozen=True, slots=True)
class SourceView:
    name: str
    phase: str
    reason: str
    message: str
    fetched: str
    applied: str
    last_result: str
    file_errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DemoSnapshot:
    nodes: tuple[NodeView, ...] = ()
    jobs: tuple[JobView, ...] = ()
    leader: str | None = None  # the name of the replica that leads
    replicas: tuple[tuple[str, str], ...] = ()  # (name, state) for each replica
    source: SourceView | None = None
    incidents: tuple[str, ...] = field(default=())  # the node controller's open incidents, when it reports them

    def job(self, job_id: str) -> JobView | None:
        return next((job for job in self.jobs if job.id == job_id), None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _short(sha: Any) -> str:
    return str(sha)[:SHORT_SHA] if sha else NO_REVISION


def _source_document(status: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    """The one source of the demo's single-source operator, from a `/status` answer."""
    if not status:
        return None
    name, document = sorted(status.items())[0]
    return (name, document) if isinstance(document, Mapping) else None


def _first_line(text: Any) -> str:
    return str(text).splitlines()[0] if text else ""


def _source_view(name: str, document: Mapping[str, Any]) -> SourceView:
    ready: Mapping[str, Any] = next(
        (c for c in document.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == "Ready"), {}
    )
    history = document.get("history") or []
    last = history[0] if history and isinstance(history[0], Mapping) else {}
    errors = document.get("fileErrors") or {}
    return SourceView(
        name=name, phase=str(document.get("phase") or "New"), reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""), fetched=_short(document.get("lastFetchedRevision")),
        applied=_short(document.get("lastAppliedRevision")), last_result=str(last.get("result") or ""),
        file_errors=tuple(f"{path}: {_first_line(text)}" for path, text in sorted(errors.items())),
    )  # fmt: skip


def _latest(items: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(items, key=lambda item: _int(item.get("CreateIndex")), default=None)


def build_snapshot(
    *,
    nodes: Sequence[Mapping[str, Any]],
    jobs: Mapping[str, Mapping[str, Any]],
    allocations: Sequence[Mapping[str, Any]],
    evaluations: Sequence[Mapping[str, Any]],
    deployments: Sequence[Mapping[str, Any]],
    replicas: Sequence[ReplicaReading],
    node_status: Mapping[str, Any] | None = None,
) -> DemoSnapshot:
    """One consistent picture from the simulator's lists (`jobs` holds full jobs by ID) and the replicas' answers."""
    node_names = {str(n.get("ID")): str(n.get("Name")) for n in nodes}
    node_views = tuple(sorted(
        (NodeView(name=str(n.get("Name")), status=str(n.get("Status")),
                  eligible=n.get("SchedulingEligibility", "eligible") == "eligible", draining=bool(n.get("Drain")))
         for n in nodes),
        key=lambda view: view.name,
    ))  # fmt: skip
    leader = next((r for r in replicas if r.leader), None)
    documents = [(r, _source_document(r.status)) for r in replicas]
    # The leader's document says what was applied; a standby's only what it would do.
    chosen = next((d for r, d in documents if r is leader and d is not None), None)
    if chosen is None:
        chosen = next((d for _, d in documents if d is not None and d[1].get("conditions") and
                       _source_view(*d).reason != STANDBY_REASON), None)  # fmt: skip
    source = _source_view(*chosen) if chosen is not None else None
    reported: dict[str, Mapping[str, Any]] = {}
    if chosen is not None:
        reported = {str(j.get("id")): j for j in chosen[1].get("jobs") or [] if isinstance(j, Mapping)}
    views = []
    for job_id in sorted(set(jobs) | set(reported)):
        job = jobs.get(job_id)
        mine = [a for a in allocations if a.get("JobID") == job_id]
        deployment = _latest(d for d in deployments if d.get("JobID") == job_id)
        health = job_health(job, mine, deployment=deployment,
                            evaluations=[e for e in evaluations if e.get("JobID") == job_id])  # fmt: skip
        entry = reported.get(job_id, {})
        sync = str(entry.get("sync") or NO_REVISION)
        message = health.message
        if sync not in (SYNCED, NO_REVISION) and entry.get("message"):
            message = f"{entry['message']}; {message}" if job is not None else str(entry["message"])
        placed = sorted(node_names.get(str(a.get("NodeID")), "?") for a in mine
                        if a.get("DesiredStatus") == "run" and a.get("ClientStatus") == "running")  # fmt: skip
        views.append(JobView(id=job_id, version=_int((job or {}).get("Version")), sync=sync,
                             health=str(health.state), message=message, running=health.running,
                             expected=health.expected, nodes=tuple(placed)))  # fmt: skip
    states = []
    for reading, document in documents:
        if reading.status is None:
            state = "unreachable"
        elif reading.leader:
            state = "leader"
        elif reading.leader is False:
            state = "standby"
        else:
            state = "starting" if document is None else "up"
        states.append((reading.name, state))
    incidents: tuple[str, ...] = ()
    if node_status is not None:
        incidents = tuple(str(i.get("node")) for i in node_status.get("openIncidents") or [] if isinstance(i, Mapping))
    return DemoSnapshot(nodes=node_views, jobs=tuple(views), leader=leader.name if leader else None,
                        replicas=tuple(states), source=source, incidents=incidents)  # fmt: skip


def is_ready(snapshot: DemoSnapshot) -> bool:
    """Every job the operator applied is in sync and healthy, and the applied revision is the fetched one."""
    source = snapshot.source
    if snapshot.leader is None or source is None or source.applied == NO_REVISION or source.applied != source.fetched:
        return False
    if not snapshot.jobs or source.file_errors:
        return False
    return all(job.sync == SYNCED and job.health == HEALTHY for job in snapshot.jobs)


def _job_state(job: JobView) -> str:
    return f"{job.health} ({job.message})" if job.message else job.health


def describe_changes(before: DemoSnapshot | None, after: DemoSnapshot) -> list[str]:
    """One line for each thing that changed, in the order nodes, operator, source, jobs (a first snapshot: all)."""
    lines: list[str] = []
    old_nodes = {n.name: n for n in before.nodes} if before else {}
    for node in after.nodes:
        previous = old_nodes.get(node.name)
        if previous is None:
            lines.append(f"node {node.name}: {node.label()}")
        elif previous.label() != node.label():
            lines.append(f"node {node.name}: {previous.label()} -> {node.label()}")
    for name in sorted(set(old_nodes) - {n.name for n in after.nodes}):
        lines.append(f"node {name}: gone")
    old_replicas = dict(before.replicas) if before else {}
    for name, state in after.replicas:
        if old_replicas.get(name) != state:
            lines.append(f"operator {name}: {state}")
    if (before.incidents if before else ()) != after.incidents:
        lines.append("node controller: open incidents on " + (", ".join(after.incidents) or "no node"))
    lines += _source_changes(before.source if before else None, after.source)
    old_jobs = {j.id: j for j in before.jobs} if before else {}
    for job in after.jobs:
        was = old_jobs.get(job.id)
        if was is None:
            lines.append(f"job {job.id}: version {job.version}, sync {job.sync}, {_job_state(job)}")
            continue
        if was.version != job.version:
            lines.append(f"job {job.id}: version {was.version} -> {job.version}")
        if was.sync != job.sync:
            lines.append(f"job {job.id}: sync {was.sync} -> {job.sync}")
        if (was.health, was.message) != (job.health, job.message):
            lines.append(f"job {job.id}: {_job_state(job)}")
    for job_id in sorted(set(old_jobs) - {j.id for j in after.jobs}):
        lines.append(f"job {job_id}: gone")
    return lines


def _source_changes(before: SourceView | None, after: SourceView | None) -> list[str]:
    if after is None:
        return []
    lines = []
    if before is None or before.fetched != after.fetched:
        lines.append(f"source {after.name}: fetched revision {after.fetched}")
    if before is None or before.applied != after.applied:
        lines.append(f"source {after.name}: applied revision {after.applied}")
    if before is None or (before.phase, before.reason) != (after.phase, after.reason):
        lines.append(f"source {after.name}: {after.phase} ({after.reason}): {after.message}")
    for error in after.file_errors:
        if before is None or error not in before.file_errors:
            lines.append(f"source {after.name}: file error {error}")
    return lines


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render_screen(
    snapshot: DemoSnapshot, *, header: Sequence[str], events: Sequence[str], footer: Sequence[str], width: int = 120
) -> str:
    """The full-screen view for a terminal: header, nodes, operator, source, the jobs table, recent events, footer."""
    lines = list(header)
    lines.append("")
    lines.append("NODES     " + "   ".join(f"{n.name} {n.label()}" for n in snapshot.nodes))
    lines.append("OPERATOR  " + "   ".join(f"{name} {state}" for name, state in snapshot.replicas))
    source = snapshot.source
    if source is None:
        lines.append("SOURCE    first sync in progress (waves: consul, fabio, whoami, then the operator's own job)")
    else:
        lines.append(f"SOURCE    {source.name}: {source.phase} ({source.reason})  fetched {source.fetched}  "
                     f"applied {source.applied}  last sync {source.last_result or '-'}")  # fmt: skip
        lines += [f"          file error {error}" for error in source.file_errors]
    if snapshot.incidents:
        lines.append("INCIDENTS " + ", ".join(snapshot.incidents))
    lines.append("")
    rows = [["JOB", "VERSION", "SYNC", "HEALTH", "RUNNING", "NODES", "MESSAGE"]]
    for job in snapshot.jobs:
        rows.append([job.id, str(job.version), job.sync, job.health, f"{job.running}/{job.expected}",
                     ",".join(job.nodes) or "-", job.message])  # fmt: skip
    lines += _table(rows)
    if events:
        lines += ["", "RECENT", *(f"  {event}" for event in events)]
    if footer:
        lines += ["", *footer]
    return "\n".join(line[:width] for line in lines)
