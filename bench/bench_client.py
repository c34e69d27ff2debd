"""Benchmark: GET requests per second through `NomadClient` at concurrency 16, against python-nomad in threads.

Why: reconcilers read jobs, allocations and variables constantly; the client must not be the bottleneck (target:
>= 1,500 GET/s at concurrency 16 on one core). The baseline is python-nomad, the existing Python client, driven from
asyncio the only way it can be (`asyncio.to_thread`), measured in the same run against the same server.

Two servers, each in a separate process (pinned to another core when there is one):
- the simulator, holding the project's own `jobs/whoami.nomad` as registered (GET /v1/job/whoami): the figure the
  target is about;
- a bare aiohttp app answering a pre-encoded job of similar size with Nomad's headers: the clients' own ceiling,
  which shows how much of the first figure is the simulator's server side.

    python bench/bench_client.py [--requests 4000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nomad
import orjson
from aiohttp import web

from _harness import CLIENT_CORE, SERVER_CORE, RoundRates, pin_to_core, rates, server_process
from nomad_operator.jobspec import load_job
from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.encoding import dumps
from nomad_operator.sim.server import start_simulator

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
JOB_ID = "whoami"


def job_json(job_id: str) -> dict[str, Any]:
    """A service job as GET /v1/job/:id returns it, about 3.8 KB."""
    task = {
        "Name": job_id,
        "Driver": "docker",
        "Config": {"image": f"traefik/{job_id}:v1.10", "ports": ["http"], "args": ["--port", "${NOMAD_PORT_http}"]},
        "Env": {"LOG_LEVEL": "info", "REGION": "eu"},
        "Services": [
            {
                "Name": job_id,
                "PortLabel": "http",
                "Provider": "consul",
                "Tags": ["urlprefix-/" + job_id],
                "Checks": [
                    {"Name": "alive", "Type": "http", "Path": "/health", "Interval": 10**10, "Timeout": 2 * 10**9}
                ],
            }
        ],
        "Resources": {"CPU": 100, "MemoryMB": 128, "DiskMB": 0, "Networks": None},
        "RestartPolicy": {"Attempts": 2, "Interval": 1_800_000_000_000, "Delay": 15_000_000_000, "Mode": "fail"},
        "KillTimeout": 5_000_000_000,
        "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False},
        "Meta": None,
        "Leader": False,
        "ShutdownDelay": 0,
    }
    templates = [
        {
            "DestPath": "local/config.yml",
            "EmbeddedTmpl": '{{ range service "consul" }}server {{ .Address }}:{{ .Port }}\n{{ end }}' * 4,
            "ChangeMode": "restart",
            "Splay": 5_000_000_000,
            "Perms": "0644",
            "LeftDelim": "{{",
            "RightDelim": "}}",
        }
    ]
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Region": "global",
        "Type": "service",
        "Priority": 50,
        "Datacenters": ["dc1"],
        "Status": "running",
        "StatusDescription": "",
        "Stable": True,
        "Stop": False,
        "Version": 3,
        "Meta": {"nomad-operator/owner": "gitops/cluster", "nomad-operator/spec-hash": "9b1f" * 16},
        "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
        "Update": {"Stagger": 30_000_000_000, "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10**10},
        "TaskGroups": [
            {
                "Name": job_id,
                "Count": 3,
                "Constraints": [{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}],
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http", "Value": 0, "To": 8080}]}],
                "Tasks": [task, {**task, "Name": f"{job_id}-sidecar", "Templates": templates}],
                "EphemeralDisk": {"Sticky": False, "SizeMB": 300, "Migrate": False},
                "ReschedulePolicy": {"Delay": 30_000_000_000, "DelayFunction": "exponential", "Unlimited": True},
                "Migrate": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10**10},
            }
        ],
        "SubmitTime": 1_700_000_000_000_000_000,
        "CreateIndex": 10,
        "ModifyIndex": 120,
        "JobModifyIndex": 120,
    }


def serve_jobs(job_id: str) -> web.Application:
    """GET /v1/job/:id with Nomad's read headers; everything else 404 "job not found"."""
    body = orjson.dumps(job_json(job_id), option=orjson.OPT_SORT_KEYS)
    headers = {"X-Nomad-Index": "120", "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "0"}

    async def read_job(request: web.Request) -> web.Response:
        if request.match_info["job_id"] != job_id:
            return web.Response(status=404, text="job not found")
        return web.Response(body=body, content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_get("/v1/job/{job_id}", read_job)
    return app


def _server_process(kind: str, port_queue: Any) -> None:
    pin_to_core(SERVER_CORE)

    async def fake() -> None:
        runner = web.AppRunner(serve_jobs(JOB_ID), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put((runner.addresses[0][1], len(orjson.dumps(job_json(JOB_ID)))))
        await asyncio.Event().wait()

    async def simulator() -> None:
        async with start_simulator(SimConfig(task_start=0.01, node_ready=0.01), host="127.0.0.1", port=0) as sim:
            job = load_job(JOBS_DIR / f"{JOB_ID}.nomad", root_dir=JOBS_DIR).job
            sim.cluster.jobs.register({"Job": job}, path_id=None, namespace="default")
            size = len(dumps(sim.cluster.store.jobs[("default", JOB_ID)]))
            port_queue.put((sim.port, size))
            await asyncio.Event().wait()

    asyncio.run(simulator() if kind == "sim" else fake())


async def _run_workers(
    count: int, concurrency: int, one_request: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """`count` requests from `concurrency` workers: requests per wall-clock second and per CPU second."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_request()

    async def all_requests() -> int:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count

    return await rates(all_requests)


async def ours(url: str, job_id: str, count: int, concurrency: int) -> tuple[float, float]:
    async with NomadClient(NomadSettings(address=url)) as client:  # default retries on, as the operator runs
        await client.read_job(job_id)  # warm the connection pool

        async def one() -> object:
            return (await client.read_job(job_id)).value

        return await _run_workers(count, concurrency, one)


async def python_nomad(url: str, job_id: str, count: int, concurrency: int) -> tuple[float, float]:
    parsed = urlparse(url)
    client = nomad.Nomad(host=parsed.hostname or "127.0.0.1", port=parsed.port or 4646, timeout=30)
    client.job.get_job(job_id)

    async def one() -> object:
        return await asyncio.to_thread(client.job.get_job, job_id)

    return await _run_workers(count, concurrency, one)


def _measure_server(kind: str, args: argparse.Namespace) -> dict[str, RoundRates]:
    with server_process(_server_process, kind, ready_timeout=60) as (port, size):
        url = f"http://127.0.0.1:{port}"
        print(f"{SERVERS[kind]}: GET /v1/job/{JOB_ID} ({size} bytes)")
        results: dict[str, RoundRates] = {}
        for name, runner in (("python-nomad in threads (baseline)", python_nomad), ("NomadClient (ours)", ours)):
            rounds = [asyncio.run(runner(url, JOB_ID, args.requests, args.concurrency)) for _ in range(args.rounds)]
            result = results[name] = RoundRates.of(rounds)
            print(f"  {name:36s} {result.wall:>8,.0f} req/s  {result.cpu:>8,.0f} req/CPU-s  (rounds: {result.shown()})")
        ours_result, baseline = results["NomadClient (ours)"], results["python-nomad in threads (baseline)"]
        wall_ratio, cpu_ratio = ours_result.wall / baseline.wall, ours_result.cpu / baseline.cpu
        print(f"  NomadClient / python-nomad: {wall_ratio:.2f} (wall), {cpu_ratio:.2f} (CPU)")
        return results


SERVERS = {"sim": "simulator", "fake": "bare aiohttp server (ceiling)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pin_to_core(CLIENT_CORE)
    print(f"{args.requests} requests a round, concurrency {args.concurrency}, {args.rounds} rounds")
    on_sim = _measure_server("sim", args)
    on_fake = _measure_server("fake", args)
    ours_name = "NomadClient (ours)"
    print(f"NomadClient on the simulator / on the bare server: {on_sim[ours_name].wall / on_fake[ours_name].wall:.2f}")


if __name__ == "__main__":
    main()
