"""The pytest plugin of the testing toolkit: a simulator, a client and operators, in-process, per test.

Enable it in your root `conftest.py` (or in a test module):

    pytest_plugins = ["nomad_operator.testing.fixtures"]

    async def test_my_controller(nomad_client, operator_factory):
        operator = await operator_factory([my_controller])          # started, caches synced, stopped after the test
        await nomad_client.register_job(job)
        await eventually(lambda: seen.get("web"), what="web reconciled")

Fixtures: `nomad_sim_config` (override it to shape the cluster), `nomad_sim` (a running simulator, nodes ready),
`nomad_client` (a `NomadClient` on it), `operator_factory` (builds and starts an `Operator` on it). The hazards they
take care of: every simulator, operator and client is stopped at teardown even when the test fails; the simulator's
timings are shrunk (heartbeats, task starts) so scenarios take milliseconds, while the logic stays Nomad's; and an
operator is handed over only once its caches are synced, so a test never races the first list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Final, Protocol

import pytest
import pytest_asyncio

from nomad_operator.nomad import NomadClient
from nomad_operator.runtime.operator import LeadershipSource, Operator, OperatorSettings
from nomad_operator.runtime.reconciler import Controller
from nomad_operator.server.app import OperatorHTTPServer
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing.simulated_cluster import client_for, fast_sim_config, wait_for_nodes_ready
from nomad_operator.testing.waiting import eventually

TEST_SHUTDOWN_TIMEOUT_SECONDS: Final = 2.0


class OperatorFactory(Protocol):
    """`await operator_factory(controllers, ...)`: a started Operator on the test's simulator."""

    async def __call__(
        self,
        controllers: Sequence[Controller],
        *,
        leader: LeadershipSource | None = None,
        settings: OperatorSettings | None = None,
        server: OperatorHTTPServer | None = None,
        wait_synced: bool = True,
    ) -> Operator: ...


class _Operators:
    """Builds operators on one simulator and stops them all at teardown."""

    def __init__(self, sim: RunningSimulator) -> None:
        self._sim = sim
        self.started: list[Operator] = []

    async def __call__(
        self,
        controllers: Sequence[Controller],
        *,
        leader: LeadershipSource | None = None,
        settings: OperatorSettings | None = None,
        server: OperatorHTTPServer | None = None,
        wait_synced: bool = True,
    ) -> Operator:
        chosen = settings if settings is not None else OperatorSettings(shutdown_timeout=TEST_SHUTDOWN_TIMEOUT_SECONDS)
        client = client_for(self._sim)
        await client.__aenter__()  # the operator closes it on stop (close_client=True)
        try:
            operator = Operator(
                client=client,
                controllers=controllers,
                leader=leader,
                server=server,
                settings=replace(chosen, close_client=True),
            )
        except BaseException:
            await client.close()
            raise
        self.started.append(operator)
        await operator.start()
        if wait_synced:
            await eventually(lambda: operator.synced, what="the operator's caches to sync")
        return operator

    async def stop_all(self) -> None:
        for operator in reversed(self.started):
            await operator.stop()


@pytest.fixture
def nomad_sim_config() -> SimConfig:
    """The simulator's config; override this fixture in a test module or conftest to shape the cluster."""
    return fast_sim_config()


@pytest_asyncio.fixture
async def nomad_sim(nomad_sim_config: SimConfig) -> AsyncIterator[RunningSimulator]:
    """A simulator on 127.0.0.1 (a free port), with every node ready."""
    async with start_simulator(nomad_sim_config, host="127.0.0.1", port=0) as running:
        await wait_for_nodes_ready(running)
        yield running


@pytest_asyncio.fixture
async def nomad_client(nomad_sim: RunningSimulator) -> AsyncIterator[NomadClient]:
    """A `NomadClient` on the simulator, without a write guard (the test acts as a person would)."""
    async with client_for(nomad_sim) as client:
        yield client


@pytest_asyncio.fixture
async def operator_factory(nomad_sim: RunningSimulator) -> AsyncIterator[OperatorFactory]:
    """Builds started operators (each with its own client) on the simulator; all are stopped after the test."""
    operators = _Operators(nomad_sim)
    try:
        yield operators
    finally:
        await operators.stop_all()
