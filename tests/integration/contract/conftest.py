"""Fixtures of the client contract tests: a fresh simulator per test, or the real cluster at NOMAD_ADDR.

See `contract_target.py` for what changes when the tests run against a real Nomad.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from contract_target import REAL_NOMAD_ADDR, SIM_POLL_DEADLINE_S, SLOW_TASK_STOP_S, Target, poll, sim_config

from nomad_operator.nomad import NO_RETRY, NomadClient, NomadError, NomadSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator


async def _started_target(config: SimConfig) -> AsyncIterator[Target]:
    if REAL_NOMAD_ADDR:
        yield Target(address=REAL_NOMAD_ADDR, token=os.environ.get("NOMAD_TOKEN") or None, simulator=None)
        return
    async with start_simulator(config, host="127.0.0.1", port=0) as running:
        target = Target(address=running.address, token=running.management_token, simulator=running)
        await _wait_nodes_ready(running)
        yield target


async def _wait_nodes_ready(running: RunningSimulator) -> None:
    async with NomadClient(NomadSettings(address=running.address, token=running.management_token)) as nomad:

        async def ready() -> bool:
            nodes = (await nomad.list_nodes()).value
            return bool(nodes) and all(node["Status"] == "ready" for node in nodes)

        await poll(ready, deadline=SIM_POLL_DEADLINE_S, what="all simulated nodes ready")


async def _clean_up(target: Target) -> None:
    """Purge the test's jobs and delete its variables; a failure here must not hide the test's own result."""
    async with NomadClient(target.settings(), retry=NO_RETRY) as nomad:
        for job_id in sorted(target.jobs):
            with contextlib.suppress(NomadError):
                await nomad.deregister_job(job_id, purge=True)
        for path in sorted(target.variables):
            try:
                variable = (await nomad.read_variable(path)).value
            except NomadError:
                continue
            with contextlib.suppress(NomadError):
                lock = variable.get("Lock")
                if isinstance(lock, dict) and lock.get("ID"):
                    await nomad.lock_release(path, lock["ID"])
                await nomad.delete_variable(path)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """The Nomad under test: a fresh simulator per test, or the real cluster at NOMAD_ADDR."""
    async for running in _started_target(sim_config()):
        try:
            yield running
        finally:
            await _clean_up(running)


@pytest.fixture
async def acl_target() -> AsyncIterator[Target]:
    """Like `target`, with ACLs on: the simulator with `acl=True` (its management token as the token)."""
    async for running in _started_target(sim_config(acl=True)):
        try:
            yield running
        finally:
            await _clean_up(running)


@pytest.fixture
async def slow_stop_target() -> AsyncIterator[Target]:
    """Like `target`, with allocations that take a minute to stop, so a drain lasts while a test looks at it."""
    async for running in _started_target(sim_config(task_stop=SLOW_TASK_STOP_S)):
        try:
            yield running
        finally:
            await _clean_up(running)


@pytest.fixture
async def nomad(target: Target) -> AsyncIterator[NomadClient]:
    async with NomadClient(target.settings()) as client:
        yield client
