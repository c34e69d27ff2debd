"""Fixtures for the simulator's integration tests: a fast simulator on 127.0.0.1, an HTTP session, and polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

# Every delay shrunk so scenarios run in well under a second each; the logic is the same as with Nomad's values.
FAST = {
    "heartbeat_ttl": 0.3,
    "heartbeat_grace": 0.3,
    "task_start": 0.02,
    "task_stop": 0.02,
    "node_ready": 0.02,
    "reschedule_delay": 0.05,
    "deployment_time_scale": 0.001,
    "event_heartbeat": 0.2,
}
POLL_DEADLINE_S = 15.0


def fast_config(**overrides: Any) -> SimConfig:
    return SimConfig(**{**FAST, **overrides})


async def eventually(check: Callable[[], Awaitable[Any]], *, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` once the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLL_DEADLINE_S
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def service_job(job_id: str = "web", *, count: int = 3, distinct: bool = True, job_type: str = "service",
                **extra: Any) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": "web",
        "Count": count,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": f"{job_id}-svc", "PortLabel": "http", "Provider": "nomad", "Tags": ["urlprefix-/"]}],
        "Tasks": [{"Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
                   "Resources": {"CPU": 100, "MemoryMB": 64}}],
    }
    if distinct:
        group["Constraints"] = [{"Operand": "distinct_hosts", "RTarget": "true"}]
    if job_type in ("system", "sysbatch"):
        group.pop("Count")
    job = {"ID": job_id, "Name": job_id, "Type": job_type, "Datacenters": ["dc1"], "TaskGroups": [group]}
    job.update(extra)
    return job


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(fast_config(), host="127.0.0.1", port=0) as running:
        await wait_ready(running)
        yield running


async def wait_ready(running: RunningSimulator) -> None:
    async def all_ready() -> bool:
        return all(node["Status"] == "ready" for node in running.cluster.store.nodes.values())

    await eventually(all_ready, what="all nodes ready")


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sim.address, read_bufsize=4 * 1024 * 1024) as session:
        yield session


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    return eventually


@pytest.fixture
def make_job() -> Callable[..., dict[str, Any]]:
    return service_job


@pytest.fixture
def make_config() -> Callable[..., SimConfig]:
    return fast_config
