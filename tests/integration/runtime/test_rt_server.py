"""The operator's HTTP server over real HTTP: /healthz, /readyz with reasons, /metrics, and route registration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from nomad_operator.runtime import Controller, ObjectKey, Result, Watch
from nomad_operator.server.app import OperatorHTTPServer, ServerStateError
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import eventually

if TYPE_CHECKING:
    from nomad_operator.testing.fixtures import OperatorFactory

pytest_plugins = ["nomad_operator.testing.fixtures"]


async def _ok(key: ObjectKey) -> Result:
    return Result()


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_readyz_says_why_until_the_caches_sync_and_healthz_answers_throughout(
    nomad_sim: RunningSimulator, operator_factory: OperatorFactory
) -> None:
    nomad_sim.cluster.inject_fault({"path": "^/v1/jobs$", "status": 500})
    server = OperatorHTTPServer(port=0)
    controller = Controller("probe", reconcile=_ok, watches=[Watch("Job", fields=("Status",))])
    operator = await operator_factory([controller], server=server, wait_synced=False)

    status, body = await eventually(
        lambda: _not_ready_naming(server.address, "500"), what="/readyz to name the failing list"
    )
    assert status == 503
    assert "informer" in body
    assert "Job" in body
    assert await fetch(f"{server.address}/healthz") == (200, "ok\n")

    nomad_sim.cluster.clear_faults()
    await eventually(lambda: operator.synced, what="sync")
    assert await fetch(f"{server.address}/readyz") == (200, "ready\n")


async def _not_ready_naming(address: str, text: str) -> tuple[int, str] | None:
    status, body = await fetch(f"{address}/readyz")
    return (status, body) if status == 503 and text in body else None


async def test_metrics_show_leadership_queues_reconciles_lag_and_cache_sizes(
    nomad_client: Any, operator_factory: OperatorFactory
) -> None:
    server = OperatorHTTPServer(port=0)
    controller = Controller("probe", reconcile=_ok, watches=[Watch("Job", fields=("Status",))])
    await operator_factory([controller], server=server)
    await nomad_client.register_job(
        {"ID": "m", "Name": "m", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [
            {"Name": "t", "Driver": "exec", "Config": {}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    )  # fmt: skip

    async def reconciled_metrics() -> str | None:
        status, body = await fetch(f"{server.address}/metrics")
        assert status == 200
        return body if 'nomad_operator_reconcile_duration_seconds_count{controller="probe"}' in body else None

    body = await eventually(reconciled_metrics, what="a reconcile in /metrics")
    assert "nomad_operator_is_leader 1.0" in body
    assert 'nomad_operator_workqueue_depth{controller="probe"}' in body
    assert 'nomad_operator_event_lag_seconds_count{controller="probe"}' in body
    assert 'nomad_operator_cache_objects{kind="Job"} 1.0' in body
    assert 'nomad_operator_reconcile_errors_total{controller="probe"} 0.0' in body


async def test_routes_are_registered_before_start_and_refused_after() -> None:
    server = OperatorHTTPServer(port=0)

    async def hook(request: web.Request) -> web.Response:
        return web.Response(text=f"hook {request.match_info['source']}")

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(text="dashboard")

    class Installer:
        def install(self, app: web.Application) -> None:
            app.router.add_get("/dashboard", dashboard)

    server.add_route("GET", "/hooks/{source}", hook)
    server.install(Installer())
    with pytest.raises(ValueError, match="served by the operator"):
        server.add_route("GET", "/metrics", hook)
    with pytest.raises(ValueError, match="start with '/'"):
        server.add_route("GET", "hooks", hook)
    server.health.add_readiness_check("git", lambda: "no fetch yet")
    with pytest.raises(ValueError, match="already registered"):
        server.health.add_readiness_check("git", lambda: None)
    async with server:
        assert await fetch(f"{server.address}/hooks/site") == (200, "hook site")
        assert await fetch(f"{server.address}/dashboard") == (200, "dashboard")
        assert await fetch(f"{server.address}/readyz") == (503, "not ready:\n- git: no fetch yet\n")
        assert (await fetch(f"{server.address}/metrics"))[0] == 503  # nothing to render yet
        with pytest.raises(ServerStateError, match="register routes before"):
            server.add_route("GET", "/late", hook)
        with pytest.raises(ServerStateError, match="already started"):
            await server.start()


async def test_a_check_that_raises_is_a_failing_check_not_a_500() -> None:
    def broken() -> str | None:
        raise KeyError("boom")

    server = OperatorHTTPServer(port=0)
    server.health.add_liveness_check("loop", broken)
    async with server:
        status, body = await fetch(f"{server.address}/healthz")
    assert status == 503
    assert "loop: check raised KeyError" in body
