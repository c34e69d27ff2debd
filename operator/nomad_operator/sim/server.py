"""Starting and stopping a simulator: the in-process entry point for tests and the demo.

`async with start_simulator(SimConfig(...)) as sim:` gives `sim.address`, `sim.cluster` and `sim.management_token`.
The hazards are shutdown and ports: an open event stream would hold aiohttp's shutdown for a minute, so streams are
cut first and the site uses a short shutdown timeout; port 0 picks a free port, and the address reports the real one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from nomad_operator.sim.cluster import SimCluster
from nomad_operator.sim.config import SHUTDOWN_TIMEOUT_S, SimConfig
from nomad_operator.sim.http.app import build_app


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    address: str  # "http://127.0.0.1:PORT"
    host: str
    port: int
    cluster: SimCluster

    @property
    def management_token(self) -> str | None:
        return self.cluster.management_token


@asynccontextmanager
async def start_simulator(
    config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    cluster = SimCluster(config or SimConfig())
    app = build_app(cluster)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        await cluster.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else port
        yield RunningSimulator(address=f"http://{host}:{bound_port}", host=host, port=bound_port, cluster=cluster)
    finally:
        cluster.broker.close_all()
        await runner.cleanup()
        await cluster.close()
