"""The assembled operator process (`controllers.assembly`) in-process, against the simulator over real HTTP and real git
repositories: progress while waves wait, health that follows node events, a no-op cycle that reads and writes nothing,
webhooks forwarded from a standby to the leader, and the rule-8 parse check against a Nomad that parses differently.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from nomad_operator.controllers.assembly import OperatorProcess, ProcessConfig, SingleSource
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec
from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.server.webhook_providers import Provider, signed_headers
from nomad_operator.server.webhooks import StaticSecret
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

SECRET = b"run-secret"
WAIT = 30.0
JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  meta = {
    "nomad-operator.wave" = "%(wave)s"
  }
  update {
    min_healthy_time = "%(healthy)s"
    healthy_deadline = "5m"
  }
  group "g" {
    count = %(count)s
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }
    task "t" {
      driver = "docker"
      config { image = "%(image)s" }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


def job_text(job_id: str, *, wave: int = 0, image: str = "app:1", count: int = 3, healthy: str = "1s") -> str:
    return JOB % {"id": job_id, "wave": wave, "image": image, "count": count, "healthy": healthy}


def state_writes(sim: RunningSimulator) -> list[dict[str, Any]]:
    log = sim.cluster.stats_snapshot()["write_log"]
    return [entry for entry in log if not entry["path"].endswith(("/plan", "/parse"))
            and not entry["path"].startswith("/v1/var/")]  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    # Deployments at a twentieth of Nomad's timings: a wave with min_healthy_time 1s waits about 50 ms.
    async with start_simulator(fast_sim_config(deployment_time_scale=0.05)) as running:
        await wait_for_nodes_ready(running)
        yield running


@pytest.fixture
async def start_process(
    sim: RunningSimulator, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    started: list[OperatorProcess] = []

    async def start(url: str, *, nomad_address: str | None = None, **spec: Any) -> OperatorProcess:
        spec.setdefault("interval", 3600.0)  # nothing here may depend on the poll
        spec.setdefault("wave_timeout", 20.0)
        source = SingleSource(spec=GitSourceSpec(name="cluster", url=url, **spec),
                              webhook_secret=StaticSecret(SECRET))  # fmt: skip
        config = ProcessConfig(nomad=NomadSettings(address=nomad_address or sim.address), port=0, single=source,
                               workdir=tmp_path / f"replica-{len(started)}", shutdown_timeout=1.0)  # fmt: skip
        process = OperatorProcess(config)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in reversed(started):
        await process.stop()


async def get_status(process: OperatorProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{process.server.address}/status") as answer:
        assert answer.status == 200
        body: dict[str, Any] = await answer.json()
    return body.get("default/cluster") or {}


def jobs_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in document.get("jobs") or []}


async def test_first_sync_publishes_progress_and_health_follows_a_node_going_down(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, start_process: Callable[..., Any]
) -> None:
    origin.remove("jobs/web.nomad")
    origin.commit_and_push({"jobs/first.nomad": job_text("first", wave=1, healthy="4s"),
                            "jobs/second.nomad": job_text("second", wave=2)}, "two waves")  # fmt: skip
    process = await start_process(origin.url)
    seen_waiting = await eventually(
        lambda: _waiting_for_first_wave(process), timeout=WAIT, what="a status that shows wave 1 being waited on"
    )
    assert seen_waiting["phase"] == "Reconciling"
    ready = await eventually(lambda: _ready(process, healthy=True), timeout=WAIT, what="the first sync to finish")
    assert {job: entry["health"] for job, entry in jobs_of(ready).items()} == {"first": "Healthy", "second": "Healthy"}
    # Waves in order: wave 1's deployment had succeeded (in Nomad's raft order) before wave 2's job was registered.
    first_deployment = (await nomad.job_deployment("first")).value
    assert first_deployment is not None
    assert first_deployment["Status"] == "successful"
    assert first_deployment["ModifyIndex"] < (await nomad.read_job("second")).value["CreateIndex"]

    sim.cluster.unplug("pi2")
    degraded = await eventually(lambda: _degraded(process), timeout=WAIT, what="both jobs Degraded, naming pi2")
    for entry in degraded.values():
        assert entry["message"].startswith("2/3 running (node pi2 down)"), entry
        assert "distinct_hosts" in entry["message"], entry
    assert process.sources.served()[0].sync.trigger.stats.polls == 0  # events did it, not the poll
    sim.cluster.plug("pi2")
    await eventually(lambda: _ready(process, healthy=True), timeout=WAIT, what="both jobs Healthy again")


async def _waiting_for_first_wave(process: OperatorProcess) -> dict[str, Any] | None:
    document = await get_status(process)
    jobs = jobs_of(document)
    if jobs.get("second", {}).get("sync") == "Pending" and "wave 1" in jobs["second"].get("message", ""):
        return document
    return None


async def _ready(process: OperatorProcess, *, healthy: bool = False) -> dict[str, Any] | None:
    document = await get_status(process)
    ready = next((c for c in document.get("conditions") or [] if c["type"] == "Ready"), {})
    if ready.get("status") != "True":
        return None
    if healthy and any(job["health"] != "Healthy" for job in document["jobs"]):
        return None
    return document


async def _degraded(process: OperatorProcess) -> dict[str, dict[str, Any]] | None:
    jobs = jobs_of(await get_status(process))
    if len(jobs) == 2 and all(j["health"] == "Degraded" and "pi2" in j["message"] for j in jobs.values()):
        return jobs
    return None


async def test_a_steady_cycle_reads_no_job_and_writes_nothing(
    origin: Any, sim: RunningSimulator, start_process: Callable[..., Any]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": job_text("web", count=1)}, "web")
    process = await start_process(origin.url)
    await eventually(lambda: _ready(process, healthy=True), timeout=WAIT, what="the first sync")
    sync = process.sources.served()[0].sync
    reads_before = process.live.reads
    sim.cluster.stats.reset()
    result = await sync.sync_once(reasons=frozenset({"interval"}))
    assert result.result == "NoChange"
    assert process.live.reads == reads_before
    requests = sim.cluster.stats_snapshot()["requests"]
    assert not [route for route in requests if "/v1/job" in route], requests  # neither a list nor a read of a job
    assert state_writes(sim) == []


async def test_a_webhook_to_the_standby_is_applied_by_the_leader(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, start_process: Callable[..., Any]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": job_text("web", count=1)}, "web")
    first = await start_process(origin.url)
    second = await start_process(origin.url)
    await eventually(lambda: _ready(first) if first.elector.is_leader else _ready(second), timeout=WAIT,
                     what="the leader's first sync")  # fmt: skip
    leader, standby = (first, second) if first.elector.is_leader else (second, first)
    assert not standby.elector.is_leader
    await eventually(lambda: standby.endpoint.leader_address(), timeout=WAIT, what="the leader's recorded address")

    origin.commit_and_push({"jobs/web.nomad": job_text("web", count=1, image="app:2")}, "app 2")
    body = orjson.dumps({"ref": "refs/heads/main", "after": "0" * 40})
    headers = signed_headers(Provider.GITHUB, SECRET, body)
    async with aiohttp.ClientSession() as http, http.post(f"{standby.server.address}/hooks/cluster", data=body,
                                                          headers=headers) as answer:
        assert answer.status == 202, await answer.text()

    async def image() -> str:
        job = (await nomad.read_job("web")).value
        return str(job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])

    await eventually(lambda: _is(image, "app:2"), timeout=WAIT, what="the leader to apply the push")
    assert standby.forwarder.forwarded == 1
    writers = {entry["writer"] for entry in state_writes(sim)}
    assert writers == {f"nomad-operator/0.1.0 replica={leader.identity}"}


async def _is(read: Callable[[], Any], expected: str) -> bool:
    return bool(await read() == expected)


@pytest.fixture
async def misparsing_nomad(sim: RunningSimulator) -> AsyncIterator[str]:
    """A proxy in front of the simulator whose /v1/jobs/parse answers a different job for `odd`."""
    async with aiohttp.ClientSession(auto_decompress=False) as upstream:

        async def proxy(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            url = f"{sim.address}{request.path_qs}"
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with upstream.request(request.method, url, data=body, headers=headers) as answer:
                payload = await answer.read()
                if request.path == "/v1/jobs/parse" and answer.status == 200 and b'"odd"' in payload:
                    job = json.loads(payload)
                    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "what-nomad-read:9"
                    payload = json.dumps(job).encode()
                response = web.StreamResponse(status=answer.status)
                for name in ("Content-Type", "X-Nomad-Index", "X-Nomad-KnownLeader", "X-Nomad-LastContact"):
                    if name in answer.headers:
                        response.headers[name] = answer.headers[name]
                await response.prepare(request)
                await response.write(payload)
                return response

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", proxy)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def test_a_job_nomad_parses_differently_is_stopped_with_the_fields_and_the_rest_syncs(
    origin: Any, nomad: NomadClient, misparsing_nomad: str, start_process: Callable[..., Any]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": job_text("web", count=1), "jobs/odd.nomad": job_text("odd", count=1)},
                           "two jobs")  # fmt: skip
    process = await start_process(origin.url, nomad_address=misparsing_nomad)

    async def settled() -> dict[str, dict[str, Any]] | None:
        jobs = jobs_of(await get_status(process))
        return jobs if jobs.get("web", {}).get("sync") == "Synced" and jobs.get("odd", {}).get("sync") else None

    jobs = await eventually(settled, timeout=WAIT, what="a sync of both files")
    assert jobs["odd"]["sync"] == "Failed", jobs["odd"]
    assert "differs from Nomad's own parse" in jobs["odd"]["message"]
    assert "Config.image" in jobs["odd"]["message"]
    listed = {job["ID"] for job in (await nomad.list_jobs()).value}
    assert listed == {"web"}
