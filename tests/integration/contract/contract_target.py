"""What the client contract tests share: the Nomad under test (the simulator or a real cluster), polling, a job.

The same tests hold our client and our simulator to Nomad's behaviour. Without NOMAD_ADDR they start the simulator
in-process on 127.0.0.1 (fast timings); with NOMAD_ADDR (and NOMAD_TOKEN) they run against that cluster instead, so a
difference between the simulator and Nomad shows up as a failing test. On a real cluster every job ID and variable path
carries a unique test prefix, everything created is removed afterwards, and tests that need the simulator's `/v1/sim/`
fault API, or that would disturb the cluster (draining a node), are skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from nomad_operator.nomad import NomadSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator

REAL_NOMAD_ADDR = os.environ.get("NOMAD_ADDR", "").strip()
# Draining a node of a real cluster moves its work: only when the person running the tests asks for it.
ALLOW_DRAIN_ON_REAL = os.environ.get("NOMAD_CONTRACT_ALLOW_DRAIN", "") == "1"
TEST_PREFIX = "nomad-operator-contract"
SIM_POLL_DEADLINE_S = 15.0
REAL_POLL_DEADLINE_S = 180.0
POLL_INTERVAL_S = 0.02
# A stop that takes this long keeps a drain going for as long as a test needs to look at it.
SLOW_TASK_STOP_S = 60.0
# The simulator's delays shrunk so each scenario takes well under a second; the rules are Nomad's.
FAST_SIM = {
    "heartbeat_ttl": 0.5,
    "heartbeat_grace": 0.5,
    "task_start": 0.02,
    "task_stop": 0.02,
    "node_ready": 0.02,
    "reschedule_delay": 0.05,
    "deployment_time_scale": 0.001,
    "event_heartbeat": 0.2,
    "lock_time_scale": 0.01,
}


@dataclass
class Target:
    """The Nomad under test and what a test created on it (removed again at teardown)."""

    address: str
    token: str | None
    simulator: RunningSimulator | None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    jobs: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)

    @property
    def is_real(self) -> bool:
        return self.simulator is None

    @property
    def poll_deadline(self) -> float:
        return REAL_POLL_DEADLINE_S if self.is_real else SIM_POLL_DEADLINE_S

    def job_id(self, name: str) -> str:
        """A job ID unique to this test run; remembered so that teardown purges it."""
        job_id = f"{TEST_PREFIX}-{self.run_id}-{name}"
        self.jobs.add(job_id)
        return job_id

    def variable_path(self, name: str) -> str:
        """A variable path unique to this test run; remembered so that teardown deletes it."""
        path = f"{TEST_PREFIX}/{self.run_id}/{name}"
        self.variables.add(path)
        return path

    @property
    def variable_prefix(self) -> str:
        return f"{TEST_PREFIX}/{self.run_id}/"

    def settings(self, *, token: str | None = None, anonymous: bool = False) -> NomadSettings:
        return NomadSettings(address=self.address, token=None if anonymous else (token or self.token))

    def require_simulator(self, why: str) -> RunningSimulator:
        if self.simulator is None:
            pytest.skip(f"needs the simulator: {why}")
        return self.simulator


def sim_config(**overrides: Any) -> SimConfig:
    return SimConfig(**{**FAST_SIM, **overrides})


async def poll(
    check: Callable[[], Awaitable[Any]], *, deadline: float, what: str, interval: float = POLL_INTERVAL_S
) -> Any:
    """Call `check` until it returns something truthy, and return that; fail naming `what` after `deadline` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if loop.time() >= end:
            raise AssertionError(f"timed out after {deadline:g}s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)


def sleeper_job(job_id: str, *, count: int = 2, **extra: Any) -> dict[str, Any]:
    """A small service job any cluster can run: busybox sleeping, with a Nomad-provider service on a dynamic port."""
    group: dict[str, Any] = {
        "Name": "app",
        "Count": count,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": f"{job_id}-svc", "PortLabel": "http", "Provider": "nomad", "Tags": ["contract"]}],
        "Tasks": [
            {
                "Name": "sleep",
                "Driver": "docker",
                "Config": {"image": "busybox:1.36", "command": "sleep", "args": ["3600"]},
                "Resources": {"CPU": 20, "MemoryMB": 16},
            }
        ],
    }
    job: dict[str, Any] = {"ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["*"], "TaskGroups": [group]}
    job.update(extra)
    return job
