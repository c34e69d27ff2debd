"""The client side of allocations: tasks start, stop and fail the way a Nomad client reports them.

A placed allocation is `pending` with no TaskStates until its client picks it up; the client then reports task events
(Received, Task Setup, Driver for docker, Started) and `running`; a stopped allocation goes through Killing, Terminated
and Killed to `complete`; a failed task ends `failed` with "Not Restarting", and the reschedule policy brings a
replacement. Controllers watch exactly these transitions (health, drift, rollout progress), so they are simulated
with short configurable delays. Updates are batched into one `AllocationUpdated` write, as Nomad's clients batch them,
so that thousands of allocations starting at once cost a few writes, not thousands.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

from nomad_operator.durations import format_duration
from nomad_operator.sim.config import CLIENT_UPDATE_BATCH_S, SimConfig
from nomad_operator.sim.encoding import fill
from nomad_operator.sim.errors import not_found
from nomad_operator.sim.state import StateStore, alloc_terminal, now_ns, rfc3339

Update = Callable[[dict[str, Any]], dict[str, Any] | None]


def task_event(kind: str, display: str, **fields: Any) -> dict[str, Any]:
    event = fill("TaskEvent", {"Details": {}, "DisplayMessage": display, "Time": now_ns(), "Type": kind, **fields})
    assert event is not None
    return event


def _tasks(alloc: Mapping[str, Any]) -> list[dict[str, Any]]:
    job = alloc.get("Job") or {}
    group: dict[str, Any] = next((g for g in job.get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), {})
    return list(group.get("Tasks") or [])


def started_states(alloc: Mapping[str, Any]) -> dict[str, Any]:
    states = {}
    for task in _tasks(alloc):
        events = [task_event("Received", "Task received by client"),
                  task_event("Task Setup", "Building Task Directory", Message="Building Task Directory")]
        if task.get("Driver") == "docker":
            image = str((task.get("Config") or {}).get("image", ""))
            events.append(task_event("Driver", "Downloading image", DriverMessage="Downloading image",
                                     Details={"image": image}))
        events.append(task_event("Started", "Task started by client"))
        states[task["Name"]] = {"Events": events, "Failed": False, "FinishedAt": None, "LastRestart": None,
                                "Paused": "", "Restarts": 0, "StartedAt": rfc3339(), "State": "running"}
    return states


def _ended_states(alloc: Mapping[str, Any], *, failed: bool) -> dict[str, Any]:
    states = {}
    previous = alloc.get("TaskStates") or {}
    for task in _tasks(alloc):
        state = dict(previous.get(task["Name"]) or {"Events": [], "Failed": False, "LastRestart": None, "Paused": "",
                                                   "Restarts": 0, "StartedAt": None})
        kill_timeout = int(task.get("KillTimeout") or 0)
        if failed:
            events = [task_event("Terminated", "Exit Code: 1", ExitCode=1,
                                 Details={"exit_code": "1", "oom_killed": "false", "signal": "0"}),
                      task_event("Not Restarting", 'Exceeded allowed attempts 2 in interval 30m0s and mode is "fail"',
                                 FailsTask=True, RestartReason="Exceeded allowed attempts 2 in interval 30m0s and mode "
                                 'is "fail"', Details={"fails_task": "true"})]
        else:
            wait = format_duration(kill_timeout)
            events = [task_event("Killing", f"Sent interrupt. Waiting {wait} before force killing",
                                 KillTimeout=kill_timeout, Details={"kill_timeout": wait}),
                      task_event("Terminated", "Exit Code: 0",
                                 Details={"exit_code": "0", "oom_killed": "false", "signal": "0"}),
                      task_event("Killed", "Task successfully killed")]
        state.update(Events=[*(state.get("Events") or []), *events], Failed=failed, FinishedAt=rfc3339(),
                     State="dead")
        states[task["Name"]] = state
    return states


class ClientSimulator:
    """Runs every allocation's client-side lifecycle on timers and reports changes in batches."""

    def __init__(self, store: StateStore, config: SimConfig, *, is_unplugged: Callable[[str], bool]) -> None:
        self._store = store
        self._config = config
        self._is_unplugged = is_unplugged
        self._pending: dict[str, list[Update]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._started: set[str] = set()
        self._stopping: set[str] = set()
        self.on_failed: Callable[[str, str], None] | None = None  # (namespace, job ID) after a task failure
        store.on_alloc_change(self._changed)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            if handle is not None:
                self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    def _changed(self, allocs: list[dict[str, Any]]) -> None:
        for alloc in allocs:
            alloc_id = alloc["ID"]
            if self._is_unplugged(alloc["NodeID"]):
                continue
            if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") == "pending" and (
                alloc_id not in self._started
            ):
                self._started.add(alloc_id)
                self._later(self._config.task_start, functools.partial(self._queue, alloc_id, self._start))
            elif alloc.get("DesiredStatus") in ("stop", "evict") and alloc.get("ClientStatus") in (
                "pending", "running") and alloc_id not in self._stopping:
                self._stopping.add(alloc_id)
                self._later(self._config.task_stop, functools.partial(self._queue, alloc_id, self._stop))

    def _queue(self, alloc_id: str, update: Update) -> None:
        self._pending.setdefault(alloc_id, []).append(update)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(CLIENT_UPDATE_BATCH_S, self.flush)

    def flush(self) -> None:
        """Report every queued change in one AllocationUpdated write."""
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        changed = []
        for alloc_id, updates in pending.items():
            alloc = self._store.allocs.get(alloc_id)
            if alloc is None or self._is_unplugged(alloc["NodeID"]):
                continue
            for update in updates:
                result = update(alloc)
                if result is not None:
                    alloc = result
            if alloc is not self._store.allocs.get(alloc_id):
                changed.append(alloc)
        if not changed:
            return
        with self._store.write("AllocationUpdated") as txn:
            for alloc in changed:
                self._store.put_alloc(txn, alloc)

    def _start(self, alloc: dict[str, Any]) -> dict[str, Any] | None:
        if alloc.get("DesiredStatus") != "run" or alloc.get("ClientStatus") != "pending":
            return None
        return dict(alloc, ClientStatus="running", ClientDescription="Tasks are running",
                    TaskStates=started_states(alloc), ModifyTime=now_ns())

    def _stop(self, alloc: dict[str, Any]) -> dict[str, Any] | None:
        self._stopping.discard(alloc["ID"])
        if alloc.get("ClientStatus") not in ("pending", "running"):
            return None
        return dict(alloc, ClientStatus="complete", ClientDescription="All tasks have completed",
                    TaskStates=_ended_states(alloc, failed=False), ModifyTime=now_ns())

    def _fail(self, alloc: dict[str, Any]) -> dict[str, Any] | None:
        if alloc.get("ClientStatus") not in ("pending", "running") or alloc_terminal(alloc):
            return None
        return dict(alloc, ClientStatus="failed", ClientDescription="Failed tasks",
                    TaskStates=_ended_states(alloc, failed=True), ModifyTime=now_ns())

    def fail_job(self, namespace: str, job_id: str) -> int:
        """The fault API: fail every running task of a job now; returns how many allocations failed."""
        key = (namespace, job_id)
        if key not in self._store.jobs:
            raise not_found("job not found")
        targets = [alloc for alloc in self._store.allocs_of_job(key)
                   if alloc.get("ClientStatus") in ("pending", "running") and not alloc_terminal(alloc)]
        for alloc in targets:
            self._queue(alloc["ID"], self._fail)
        self.flush()
        if targets and self.on_failed is not None:
            callback = self.on_failed
            self._later(self._config.reschedule_delay, lambda: callback(namespace, job_id))
        return len(targets)
