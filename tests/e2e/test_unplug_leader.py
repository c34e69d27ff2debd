"""Issue 6, the last clause of the promise, as processes: pi2 loses power with the leading operator replica on it, and
the other replica takes over and carries on.

The operator replicas are processes, not allocations, so "the leader ran on pi2" is modelled by doing both at once:
`/v1/sim/node/pi2/unplug` on a `nomad-operator sim` process (short heartbeat TTL and grace, deployments at a fiftieth
of Nomad's timings) and SIGKILL of the replica that leads. The hazards this test covers are the ones that only show up
when the two coincide: the node goes down while nobody leads, so the new leader must learn of the incident from the
state it finds, not from an event it watched; and the dead leader must not appear as a writer once it is gone.

The simulator process keeps Nomad's lock timing (a TTL of 10 s at least), so the replicas run with that TTL and no
lock delay, and the failover is awaited within TTL + 5 s of the kill. Everything is observed from outside: each
replica's `/metrics` and `/status`, and Nomad's API (allocations, services, the simulator's write log, whose writer is
the request's User-Agent `nomad-operator/<version> replica=<identity>`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e_processes import (
    RunProcess,
    fetch_json,
    is_leader,
    kill_group,
    post,
    repository_settings,
    simulator_process,
    spawn_run,
    stop_all,
    until,
)

LEADER_TTL_S = 10.0
"""Nomad's smallest lock TTL: the simulator process runs its lock timers at Nomad's speed."""
FAILOVER_DEADLINE_S = LEADER_TTL_S + 5.0
HEARTBEAT_TTL, HEARTBEAT_GRACE = "300ms", "300ms"
DEPLOYMENT_TIME_SCALE = "0.02"
JOBS = ("consul", "fabio", "whoami")
NODES = ["pi1", "pi2", "pi3"]


@pytest.fixture
def simulator() -> Iterator[str]:
    with simulator_process("--nodes", "3", "--arch", "arm64", "--heartbeat-ttl", HEARTBEAT_TTL, "--heartbeat-grace",
                           HEARTBEAT_GRACE, "--deployment-time-scale", DEPLOYMENT_TIME_SCALE) as address:  # fmt: skip
        yield address


@pytest.fixture
async def replicas(simulator: str, jobs_repository: Path, tmp_path: Path) -> AsyncIterator[list[RunProcess]]:
    """Two replicas (their logs in tmp_path, kept by pytest for a failure's post-mortem), stopped even on failure."""
    settings = repository_settings(jobs_repository, LEADER_TTL=str(LEADER_TTL_S), LEADER_LOCK_DELAY="0")
    started: list[RunProcess] = []
    try:
        for number in range(2):
            started.append(spawn_run(simulator, settings=settings, log=tmp_path / f"replica-{number}.log"))
        yield started
    finally:
        await stop_all(replica.process for replica in started)


async def _source_status(http: aiohttp.ClientSession, replica: RunProcess) -> dict[str, Any] | None:
    documents = await fetch_json(http, f"{replica.address}/status")
    return next(iter(documents.values()), None)


async def _jobs_reported(http: aiohttp.ClientSession, replica: RunProcess) -> dict[str, dict[str, Any]]:
    document = await _source_status(http, replica) or {}
    return {job["id"]: job for job in document.get("jobs") or []}


async def _placements(http: aiohttp.ClientSession, sim: str, job: str) -> list[str]:
    names = {node["ID"]: node["Name"] for node in await fetch_json(http, f"{sim}/v1/nodes")}
    allocs = await fetch_json(http, f"{sim}/v1/job/{job}/allocations")
    return sorted(names[a["NodeID"]] for a in allocs
                  if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running")  # fmt: skip


async def _all_spread(http: aiohttp.ClientSession, sim: str) -> bool:
    return all([await _placements(http, sim, job) == NODES for job in JOBS])


async def _routable_whoami_nodes(http: aiohttp.ClientSession, sim: str) -> list[str]:
    """The nodes of the registered whoami instances that carry a fabio route tag."""
    names = {node["ID"]: node["Name"] for node in await fetch_json(http, f"{sim}/v1/nodes")}
    registrations = await fetch_json(http, f"{sim}/v1/service/whoami")
    return sorted(names.get(r["NodeID"], r["NodeID"]) for r in registrations
                  if any(tag.startswith("urlprefix-") for tag in r.get("Tags") or []))  # fmt: skip


async def _all_healthy(http: aiohttp.ClientSession, replica: RunProcess) -> bool:
    jobs = await _jobs_reported(http, replica)
    return all(jobs.get(job, {}).get("health") == "Healthy" for job in JOBS)


async def _degraded_naming_pi2(http: aiohttp.ClientSession, replica: RunProcess) -> dict[str, dict[str, Any]] | None:
    jobs = await _jobs_reported(http, replica)
    if all(job in jobs and jobs[job]["health"] == "Degraded" and "(node pi2 down)" in jobs[job]["message"]
           for job in JOBS):  # fmt: skip
        return jobs
    return None


async def test_unplugging_the_leaders_node_hands_over_and_the_cluster_heals(
    simulator: str, replicas: list[RunProcess]
) -> None:
    async with aiohttp.ClientSession() as http:
        await until(lambda: _all_spread(http, simulator), "consul, fabio and whoami 3/3 on distinct nodes")
        assert await _routable_whoami_nodes(http, simulator) == NODES

        async def the_leader() -> list[RunProcess] | None:
            leading = [replica for replica in replicas if await is_leader(http, replica.address)]
            return leading if len(leading) == 1 else None

        (leader,) = await until(the_leader, "exactly one replica leading")
        (survivor,) = [replica for replica in replicas if replica is not leader]
        await until(lambda: _all_healthy(http, leader), "the leader's status showing every job Healthy")
        leader_status = await until(lambda: _source_status(http, leader), "the leader's status")
        survivor_status = await until(lambda: _source_status(http, survivor), "the standby's status")
        leader_agent = f"replica={leader_status['replica']['identity']}"
        survivor_agent = f"replica={survivor_status['replica']['identity']}"
        assert leader_agent != survivor_agent
        assert survivor_status["replica"]["leader"] is False

        # pi2 loses power with the leader on it: no release of the lock, no goodbye; the replica and its jobspec
        # workers stop at once, and so do the node's heartbeats.
        failover_deadline = time.monotonic() + FAILOVER_DEADLINE_S
        kill_group(leader.process)
        await post(http, f"{simulator}/v1/sim/node/pi2/unplug")
        await asyncio.to_thread(leader.process.wait, 10)
        dead_since = time.time()  # the simulator stamps its write log with the same wall clock

        await until(lambda: is_leader(http, survivor.address), "the survivor to lead within TTL + 5 s of the kill",
                     within=failover_deadline - time.monotonic())  # fmt: skip
        reported = await until(lambda: _degraded_naming_pi2(http, survivor),
                                "the new leader's status: each job Degraded, naming pi2")  # fmt: skip
        for job in JOBS:
            assert reported[job]["message"].startswith("2/3 running (node pi2 down)"), reported[job]
            assert "distinct_hosts" in reported[job]["message"], reported[job]
        assert (await _source_status(http, survivor) or {})["replica"]["leader"] is True
        assert await _routable_whoami_nodes(http, simulator) == ["pi1", "pi3"]
        for job in JOBS:
            assert await _placements(http, simulator, job) == ["pi1", "pi3"], job

        await post(http, f"{simulator}/v1/sim/node/pi2/plug")
        await until(lambda: _all_spread(http, simulator), "every job back to 3/3 with no action")
        await until(lambda: _all_healthy(http, survivor), "the new leader's status showing every job Healthy again")
        assert await _routable_whoami_nodes(http, simulator) == NODES
        log = (await fetch_json(http, f"{simulator}/v1/sim/stats"))["write_log"]

    after_kill = [entry for entry in log if entry["time"] > dead_since]
    assert [entry for entry in after_kill if leader_agent in entry["writer"]] == []
    # The survivor carried on as the writer: it took the lock and recorded the incident and its end.
    survivor_paths = {entry["path"] for entry in after_kill if survivor_agent in entry["writer"]}
    assert "/v1/var/nomad-operator/leader" in survivor_paths, survivor_paths
    assert "/v1/var/nomad-operator/status/nodes" in survivor_paths, survivor_paths
