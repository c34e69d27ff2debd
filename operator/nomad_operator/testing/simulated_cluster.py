"""A simulated cluster for tests: fast timings, a client for it, and the wait for its nodes.

Kept apart from the pytest plugin (`fixtures`) so that test modules can import these helpers without importing the
plugin module itself, which pytest must load first to rewrite its asserts.
"""

from __future__ import annotations

from typing import Any, Final

from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing.waiting import DEFAULT_TIMEOUT_SECONDS, eventually

FAST_SIM_TIMINGS: Final[dict[str, float]] = {
    "heartbeat_ttl": 0.3,
    "heartbeat_grace": 0.3,
    "task_start": 0.02,
    "task_stop": 0.02,
    "node_ready": 0.02,
    "reschedule_delay": 0.05,
    "deployment_time_scale": 0.001,
    "event_heartbeat": 0.2,
}
"""Simulator timings shrunk for tests: nodes go down in 0.6 s, tasks start in 20 ms, event heartbeats every 0.2 s."""


def fast_sim_config(**overrides: Any) -> SimConfig:
    """A `SimConfig` with `FAST_SIM_TIMINGS`, and any field overridden by keyword."""
    return SimConfig(**{**FAST_SIM_TIMINGS, **overrides})


async def wait_for_nodes_ready(sim: RunningSimulator, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109
    """Until every simulated node reports `ready`."""

    def all_ready() -> bool:
        nodes = sim.cluster.store.nodes.values()
        return bool(nodes) and all(node["Status"] == "ready" for node in nodes)

    await eventually(all_ready, timeout=timeout, what="every simulated node to be ready")


def client_for(sim: RunningSimulator, **options: Any) -> NomadClient:
    """A `NomadClient` for the simulator (with its management token when ACLs are on); enter it before use."""
    return NomadClient(NomadSettings(address=sim.address, token=sim.management_token), **options)
