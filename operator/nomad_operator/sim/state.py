"""The simulator's state store: tables, secondary indexes, one raft-like index, write transactions, blocking waits.

Everything the operator can observe hangs off Nomad's single raft index: `X-Nomad-Index`, blocking queries that wait
for a strictly greater index, ModifyIndex on every object, and the event stream's batch index. The hazards handled
here: a write must stamp every object it touches with one index and emit all its events as one batch of one Type
(Nomad's raft message); readers must never see a half-applied write (objects are replaced, never mutated in place, and
a write has no await inside); and lookups by job or by node, and what each node's allocations use, must not scan
every allocation, or 10,000 allocations make every evaluation quadratic.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nomad_operator.sim.config import JOB_TRACKED_VERSIONS
from nomad_operator.sim.encoding import drop_empty
from nomad_operator.sim.events import Event, EventBroker
from nomad_operator.sim.node_usage import NodeUsageTracker, alloc_load

JobKey = tuple[str, str]  # (namespace, job ID)

TERMINAL_CLIENT = frozenset({"complete", "failed", "lost"})
TERMINAL_DESIRED = frozenset({"stop", "evict"})


def alloc_terminal(alloc: dict[str, Any]) -> bool:
    """Nomad's TerminalStatus: the server asked it to stop, or the client says it ended."""
    return alloc.get("DesiredStatus") in TERMINAL_DESIRED or alloc.get("ClientStatus") in TERMINAL_CLIENT


def client_terminal(alloc: dict[str, Any]) -> bool:
    return alloc.get("ClientStatus") in TERMINAL_CLIENT


def now_ns() -> int:
    return time.time_ns()


class Write:
    """One write transaction: a single index for every object it touches, one event batch of one Type."""

    def __init__(self, store: StateStore, *, event_type: str, index: int) -> None:
        self.store = store
        self.event_type = event_type
        self.index = index
        self.events: list[Event] = []
        self.tables: set[str] = set()
        self.changed_allocs: list[dict[str, Any]] = []
        self.dirty_jobs: set[JobKey] = set()  # jobs whose status and summary must be recomputed before commit

    def touch(self, table: str) -> None:
        self.tables.add(table)

    def emit(self, event: Event) -> None:
        self.events.append(event)


class StateStore:
    """Tables of wire-shaped objects (dicts), replaced on every write, with indexes by job and by node."""

    def __init__(self, broker: EventBroker) -> None:
        self.broker = broker
        self.index = 1
        self.table_index: dict[str, int] = defaultdict(lambda: 1)
        self.jobs: dict[JobKey, dict[str, Any]] = {}
        self.job_versions: dict[JobKey, list[dict[str, Any]]] = {}  # newest first
        self.job_summaries: dict[JobKey, dict[str, Any]] = {}
        self.submissions: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.allocs_by_job: dict[JobKey, set[str]] = defaultdict(set)
        self.allocs_by_node: dict[str, set[str]] = defaultdict(set)
        self.live_allocs: set[str] = set()  # non-terminal
        # What the live allocations use on each node, for the scheduler: kept per write, never summed per evaluation.
        self.node_usage = NodeUsageTracker()
        self.evals: dict[str, dict[str, Any]] = {}
        self.evals_by_job: dict[JobKey, list[str]] = defaultdict(list)
        self.deployments: dict[str, dict[str, Any]] = {}
        self.deployments_by_job: dict[JobKey, list[str]] = defaultdict(list)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.services_by_alloc: dict[str, set[str]] = defaultdict(set)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._alloc_listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.before_commit: Callable[[Write], None] | None = None

    # ---- transactions -------------------------------------------------------------------------------------------

    @contextmanager
    def write(self, event_type: str, *, same_index: bool = False) -> Iterator[Write]:
        """Open a write; on exit the index advances (unless `same_index`), events publish, and waiters wake."""
        index = self.index if same_index else self.index + 1
        txn = Write(self, event_type=event_type, index=index)
        yield txn
        if self.before_commit is not None and txn.dirty_jobs:
            self.before_commit(txn)
        self.index = index
        for table in txn.tables:
            self.table_index[table] = index
        self.broker.publish(index=index, event_type=event_type, events=txn.events)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for listener in self._alloc_listeners:
            if txn.changed_allocs:
                listener(txn.changed_allocs)

    def on_alloc_change(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Register `listener(list_of_allocs)`, called after every write that changed allocations."""
        self._alloc_listeners.append(listener)

    def max_index(self, tables: Iterable[str]) -> int:
        return max((self.table_index[table] for table in tables), default=self.index)

    async def wait_beyond(self, tables: Iterable[str], index: int, *, timeout: float) -> None:  # noqa: ASYNC109
        """Block until one of `tables` has an index strictly greater than `index`, or `timeout` passes."""
        tables = tuple(tables)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.max_index(tables) <= index:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return

    # ---- jobs ---------------------------------------------------------------------------------------------------

    def put_job(self, txn: Write, job: dict[str, Any], *, new_version: bool) -> None:
        key = (job["Namespace"], job["ID"])
        self.jobs[key] = job
        if new_version:
            versions = self.job_versions.setdefault(key, [])
            versions.insert(0, job)
            del versions[JOB_TRACKED_VERSIONS:]
        else:
            versions = self.job_versions.get(key, [])
            for position, version in enumerate(versions):
                if version["Version"] == job["Version"]:
                    versions[position] = job
        txn.touch("jobs")
        txn.emit(Event("Job", job["ID"], job["Namespace"], None, {"Job": job}))

    def delete_job(self, txn: Write, key: JobKey) -> None:
        job = self.jobs.pop(key, None)
        self.job_versions.pop(key, None)
        self.job_summaries.pop(key, None)
        if job is None:
            return
        txn.touch("jobs")
        txn.emit(Event("Job", job["ID"], job["Namespace"], None, {"Deleted": True, "Job": job}))

    def put_summary(self, txn: Write, summary: dict[str, Any]) -> None:
        self.job_summaries[(summary["Namespace"], summary["JobID"])] = summary
        txn.touch("job_summary")

    # ---- allocations --------------------------------------------------------------------------------------------

    def put_alloc(self, txn: Write, alloc: dict[str, Any]) -> None:
        alloc_id = alloc["ID"]
        previous = self.allocs.get(alloc_id)
        alloc["ModifyIndex"] = txn.index
        if previous is None:
            alloc.setdefault("CreateIndex", txn.index)
            self.allocs_by_job[(alloc["Namespace"], alloc["JobID"])].add(alloc_id)
            self.allocs_by_node[alloc["NodeID"]].add(alloc_id)
        self.allocs[alloc_id] = alloc
        if alloc_terminal(alloc):
            self.live_allocs.discard(alloc_id)
            self.node_usage.set_gone(alloc_id)
        else:
            unchanged_load = (
                previous is not None
                and alloc_id in self.live_allocs
                and previous.get("AllocatedResources") is alloc.get("AllocatedResources")
                and previous["NodeID"] == alloc["NodeID"]
            )
            self.live_allocs.add(alloc_id)
            if not unchanged_load:  # client updates copy the allocation but share its resources: nothing to redo
                self.node_usage.set_live(alloc_id, alloc_load(alloc))
        txn.touch("allocs")
        txn.changed_allocs.append(alloc)
        txn.dirty_jobs.add((alloc["Namespace"], alloc["JobID"]))
        payload = {key: value for key, value in alloc.items() if key != "Job"}
        txn.emit(
            Event(
                "Allocation",
                alloc_id,
                alloc["Namespace"],
                (alloc["JobID"], alloc.get("DeploymentID", "")),
                {"Allocation": drop_empty(payload)},
            )
        )

    def allocs_of_job(self, key: JobKey) -> list[dict[str, Any]]:
        return [self.allocs[alloc_id] for alloc_id in self.allocs_by_job.get(key, ())]

    def allocs_of_node(self, node_id: str) -> list[dict[str, Any]]:
        return [self.allocs[alloc_id] for alloc_id in self.allocs_by_node.get(node_id, ())]

    # ---- evaluations --------------------------------------------------------------------------------------------

    def put_eval(self, txn: Write, evaluation: dict[str, Any]) -> None:
        previous = self.evals.get(evaluation["ID"])
        evaluation["ModifyIndex"] = txn.index
        evaluation["ModifyTime"] = now_ns()
        if previous is None:
            evaluation.setdefault("CreateIndex", txn.index)
            evaluation.setdefault("CreateTime", evaluation["ModifyTime"])
            self.evals_by_job[(evaluation["Namespace"], evaluation["JobID"])].append(evaluation["ID"])
        self.evals[evaluation["ID"]] = evaluation
        txn.touch("evals")
        txn.dirty_jobs.add((evaluation["Namespace"], evaluation["JobID"]))
        txn.emit(
            Event(
                "Evaluation",
                evaluation["ID"],
                evaluation["Namespace"],
                (evaluation["JobID"], evaluation.get("DeploymentID", "")),
                {"Evaluation": drop_empty(evaluation)},
            )
        )

    def evals_of_job(self, key: JobKey) -> list[dict[str, Any]]:
        return [self.evals[eval_id] for eval_id in self.evals_by_job.get(key, ()) if eval_id in self.evals]

    # ---- deployments --------------------------------------------------------------------------------------------

    def put_deployment(self, txn: Write, deployment: dict[str, Any]) -> None:
        previous = self.deployments.get(deployment["ID"])
        deployment["ModifyIndex"] = txn.index
        deployment["ModifyTime"] = now_ns()
        if previous is None:
            deployment["CreateIndex"] = txn.index
            deployment["CreateTime"] = deployment["ModifyTime"]
            self.deployments_by_job[(deployment["Namespace"], deployment["JobID"])].append(deployment["ID"])
        self.deployments[deployment["ID"]] = deployment
        txn.touch("deployment")
        txn.dirty_jobs.add((deployment["Namespace"], deployment["JobID"]))
        txn.emit(
            Event(
                "Deployment",
                deployment["ID"],
                deployment["Namespace"],
                (deployment["JobID"],),
                {"Deployment": deployment},
            )
        )

    def deployments_of_job(self, key: JobKey) -> list[dict[str, Any]]:
        """Newest first."""
        ids = self.deployments_by_job.get(key, [])
        return [self.deployments[dep_id] for dep_id in reversed(ids) if dep_id in self.deployments]

    # ---- nodes, services, variables -----------------------------------------------------------------------------

    def put_node(self, txn: Write, node: dict[str, Any]) -> None:
        node["ModifyIndex"] = txn.index
        node.setdefault("CreateIndex", txn.index)
        self.nodes[node["ID"]] = node
        txn.touch("nodes")
        txn.emit(Event("Node", node["ID"], "", None, {"Node": node}))

    def put_service(self, txn: Write, registration: dict[str, Any]) -> None:
        registration["ModifyIndex"] = txn.index
        registration.setdefault("CreateIndex", txn.index)
        self.services[registration["ID"]] = registration
        self.services_by_alloc[registration["AllocID"]].add(registration["ID"])
        txn.touch("services")
        txn.emit(self._service_event(registration))

    def delete_service(self, txn: Write, service_id: str) -> None:
        registration = self.services.pop(service_id, None)
        if registration is None:
            return
        self.services_by_alloc[registration["AllocID"]].discard(service_id)
        txn.touch("services")
        txn.emit(self._service_event(registration))

    @staticmethod
    def _service_event(registration: dict[str, Any]) -> Event:
        return Event(
            "Service",
            registration["ID"],
            registration["Namespace"],
            (registration["JobID"], registration["ServiceName"]),
            {"Service": registration},
        )

    def put_variable(self, txn: Write, variable: dict[str, Any], *, deleted: bool = False) -> None:
        key = (variable["Namespace"], variable["Path"])
        if deleted:
            self.variables.pop(key, None)
        else:
            self.variables[key] = variable
        txn.touch("variables")
        metadata = {name: value for name, value in variable.items() if name != "Items"}
        txn.emit(Event("Variable", variable["Path"], variable["Namespace"], None, {"Deleted": deleted,
                                                                                   "Metadata": metadata}))


def rfc3339(nanoseconds: int | None = None) -> str:
    """A time as Go's RFC3339Nano writes it in UTC ("2024-05-01T10:00:00.123456789Z")."""
    value = time.time_ns() if nanoseconds is None else nanoseconds
    seconds, fraction = divmod(value, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        return f"{stamp}.{fraction:09d}".rstrip("0") + "Z"
    return stamp + "Z"
