"""Two `nomad-operator run` replicas as processes on one simulated cluster: only the leader writes, and when the
leader is SIGKILLed in the middle of a sync (wave 1 written, wave 2 waiting), the other takes over and finishes it.

The simulator runs in this test's process with its lock timers five times faster (`lock_time_scale`), and the
replicas are told the same (`NOMAD_OPERATOR_LEADER_TIME_SCALE`), so a failover takes about three seconds instead of
fifteen. Writers are told apart by the User-Agent the simulator's write log keeps (`replica=<identity>`).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e_processes import RunProcess, RunProcesses, commit_files, empty_repository, repository_settings

from nomad_operator.nomad import NomadClient, NomadSettings, NotFound
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

WAIT = 60.0
TIME_SCALE = "0.2"
JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  meta = {
    "nomad-operator.wave" = "%(wave)s"
  }
  update {
    min_healthy_time = "%(healthy)s"
  }
  group "g" {
    count = 2
    task "t" {
      driver = "docker"
      config { image = "app:1" }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = empty_repository(tmp_path / "repo")
    # Wave 1 stays unhealthy for min_healthy_time (x the deployment time scale): the window to kill the leader in.
    commit_files(repo, {"jobs/first.nomad": JOB % {"id": "first", "wave": 1, "healthy": "20s"},
                        "jobs/second.nomad": JOB % {"id": "second", "wave": 2, "healthy": "1s"}},
                 message="two waves")  # fmt: skip
    return repo


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    config = fast_sim_config(deployment_time_scale=0.2, lock_time_scale=float(TIME_SCALE))
    async with start_simulator(config) as running:
        await wait_for_nodes_ready(running)
        yield running


@pytest.fixture
async def replicas(sim: RunningSimulator, repository: Path, tmp_path: Path) -> AsyncIterator[list[RunProcess]]:
    settings = repository_settings(repository, INTERVAL="1h", LEADER_TIME_SCALE=TIME_SCALE, LEADER_LOCK_DELAY="0")
    started = RunProcesses(sim.address, tmp_path)
    try:
        for _ in range(2):
            started.start(settings=settings)
        yield started.started
    finally:
        await started.stop_all_off_loop()


async def replica_state(replica: RunProcess) -> dict[str, Any] | None:
    """The `replica` block of the replica's /status (identity, leader), once it has a status."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{replica.address}/status") as answer:
            documents = json.loads(await answer.text())
    except (aiohttp.ClientError, ValueError):
        return None
    for document in documents.values():
        return dict(document["replica"])
    return None


def job_writes(sim: RunningSimulator) -> list[dict[str, Any]]:
    return [entry for entry in sim.cluster.stats_snapshot()["write_log"]
            if entry["method"] == "PUT" and entry["path"] == "/v1/jobs"]  # fmt: skip


async def test_only_the_leader_writes_and_the_standby_finishes_after_a_sigkill(
    sim: RunningSimulator, replicas: list[RunProcess]
) -> None:
    async with NomadClient(NomadSettings(address=sim.address)) as nomad:

        async def registered(job_id: str) -> bool:
            try:
                await nomad.read_job(job_id)
            except NotFound:
                return False
            return True

        await eventually(lambda: registered("first"), timeout=WAIT, what="wave 1 registered")
        states = [await eventually(lambda r=r: replica_state(r), timeout=WAIT, what="a status") for r in replicas]
        leaders = [index for index, state in enumerate(states) if state["leader"]]
        assert len(leaders) == 1, states
        leader, standby = replicas[leaders[0]], replicas[1 - leaders[0]]
        leader_agent = f"replica={states[leaders[0]]['identity']}"
        standby_agent = f"replica={states[1 - leaders[0]]['identity']}"
        assert not await registered("second")  # mid-sync: wave 2 waits for wave 1 to be healthy

        writes_before = job_writes(sim)
        log_before = sim.cluster.stats_snapshot()["write_log"]
        leader.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(leader.process.wait, 10)
        assert writes_before
        assert all(leader_agent in entry["writer"] for entry in writes_before)

        await eventually(lambda: registered("second"), timeout=WAIT, what="the standby to finish the sync")
        later = job_writes(sim)[len(writes_before):]
        assert later
        assert all(standby_agent in entry["writer"] for entry in later), later
        state = await eventually(lambda: replica_state(standby), timeout=WAIT, what="the survivor's status")
        assert state["leader"] is True
        # While the leader lived, the standby changed nothing: it sent only its bids for the lock, and the reads
        # that Nomad's API spells as PUT (plan, parse) while it decided what it would do.
        standby_writes = [entry for entry in log_before if standby_agent in entry["writer"]
                          and not entry["path"].startswith("/v1/var/nomad-operator/leader")
                          and not entry["path"].endswith(("/plan", "/parse"))]  # fmt: skip
        assert standby_writes == []
