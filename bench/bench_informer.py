"""Benchmark of the informer: ingest from the simulator's event stream into the cache, and event-to-reconcile latency.

1. ingest: the simulator builds a backlog (jobs with many allocations; its event buffer keeps the last 500
   batches), then a consumer reads the whole backlog from index 0 and applies it. Ours: `EventStream` +
   `Informer.apply_batch` into a projected cache. Baseline, in the same run: a naive consumer (aiohttp `readline`,
   `json.loads`, whole payloads kept in a dict). Printed: events/s of each and their ratio (target: ours >= 30,000/s).
2. latency: a running Operator with one controller, while jobs are registered one at a time; from just before each
   register call to the start of the job's first reconcile, p50 and p99. Baseline: the same job's arrival on a bare
   `EventStream` consumer in the same process (what the stream itself costs).

Run: `.venv/bin/python bench/bench_informer.py [--jobs 100] [--count 100] [--latency-jobs 200]`. Figures are printed,
never asserted. Simulator, consumer and operator share the process (and the 2 cores), as in the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

from _harness import percentile
from nomad_operator.nomad import EventBatch, NomadClient, NomadSettings
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch, job_of_allocation
from nomad_operator.runtime.informer import Informer, cache_for_controllers
from nomad_operator.runtime.operator import Operator, OperatorSettings
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

TOPICS = ["Job", "Allocation", "Node", "Deployment", "Evaluation"]
REPLAY_BATCHES = 500
PHASE_TIMEOUT_SECONDS = 120.0


def job(job_id: str, count: int) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": {"team": "bench"},
        "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 10, "MemoryMB": 10}}]}],
    }  # fmt: skip


async def _noop(key: ObjectKey) -> Result:
    return Result()


CONTROLLER = Controller(
    "bench",
    reconcile=_noop,
    watches=[
        Watch("Job", fields=("Meta", "Status")),
        Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "ClientStatus", "TaskStates.*.State")),
        Watch("Node", fields=("Status",)),
        Watch("Deployment", fields=("Status",)),
        Watch("Evaluation", fields=("Status",)),
    ],
)


async def build_backlog(sim: RunningSimulator, client: NomadClient, *, jobs: int, count: int) -> int:
    for number in range(jobs):
        await client.register_job(job(f"job-{number:04d}", count))
    await sim.cluster.wait_idle()
    last = -1
    while last != sim.cluster.store.index:  # let the clients settle (tasks start, allocations update)
        last = sim.cluster.store.index
        await asyncio.sleep(0.5)
    store = sim.cluster.store
    tables: list[Any] = [store.jobs, store.allocs, store.evals, store.deployments, store.nodes]
    return max(obj["ModifyIndex"] for table in tables for obj in table.values())  # the last batch of our topics


async def ingest_ours(sim: RunningSimulator, client: NomadClient, target: int) -> tuple[int, float]:
    informer = Informer(client=client, cache=cache_for_controllers([CONTROLLER]))
    started = time.perf_counter()
    async with client.event_stream(TOPICS, after_index=0) as stream:
        async for item in stream:
            if not isinstance(item, EventBatch):
                raise RuntimeError(f"the stream was reset during the replay ({item.reason}): shrink the backlog")
            informer.apply_batch(item)
            if item.index >= target:
                break
    return informer.events_received, time.perf_counter() - started


async def ingest_naive(sim: RunningSimulator, target: int) -> tuple[int, float]:
    store: dict[tuple[str, str], Any] = {}
    events = 0
    params = [("index", "0"), ("namespace", "*")] + [("topic", f"{topic}:*") for topic in TOPICS]
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession(read_bufsize=4 * 1024 * 1024) as session,
        session.get(f"{sim.address}/v1/event/stream", params=params) as response,
    ):
        async for line in response.content:
            frame = json.loads(line)
            if not frame:
                continue
            for event in frame["Events"]:
                store[(event["Topic"], event["Key"])] = event["Payload"]
                events += 1
            if frame["Index"] >= target:
                break
    return events, time.perf_counter() - started


async def latency(sim: RunningSimulator, *, jobs: int) -> tuple[list[float], list[float]]:
    started_at: dict[str, float] = {}
    reconciled: dict[str, float] = {}
    streamed: dict[str, float] = {}

    async def first_reconcile(key: ObjectKey) -> Result:
        if key.name in started_at:
            reconciled.setdefault(key.name, time.perf_counter())
        return Result()

    controller = Controller("latency", reconcile=first_reconcile, watches=[Watch("Job", fields=("Status",))])
    client = NomadClient(NomadSettings(address=sim.address))
    await client.__aenter__()
    operator = Operator(client=client, controllers=[controller], settings=OperatorSettings())
    async with NomadClient(NomadSettings(address=sim.address)) as writer:
        await operator.start()
        await operator.wait_synced()

        async def bare_stream() -> None:
            async with writer.event_stream(["Job"], after_index=sim.cluster.store.index) as stream:
                async for item in stream:
                    if isinstance(item, EventBatch):
                        for event in item.events:
                            if event.key in started_at:
                                streamed.setdefault(event.key, time.perf_counter())

        watcher = asyncio.create_task(bare_stream())
        await asyncio.sleep(0.2)
        for number in range(jobs):
            job_id = f"lat-{number:04d}"
            started_at[job_id] = time.perf_counter()
            await writer.register_job(job(job_id, 1))
            await eventually(
                lambda: job_id in reconciled and job_id in streamed,  # noqa: B023 - awaited in this iteration
                interval=0.0005,
                what=f"{job_id} reconciled and streamed",
            )
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await operator.stop()
    ours = [reconciled[name] - started_at[name] for name in started_at]
    bare = [streamed[name] - started_at[name] for name in started_at]
    return ours, bare


async def main(args: argparse.Namespace) -> None:
    # The simulator drops a subscriber more than 512 batches behind (as Nomad drops slow ones), and a replay from
    # index 0 queues the whole buffer at once: keep the buffer under that, and make batches big instead.
    # Tasks never start, so the buffer holds the registrations' big PlanResult batches, not a tail of client updates.
    config = fast_sim_config(nodes=20, event_buffer_size=REPLAY_BATCHES, task_start=3600.0)
    async with start_simulator(config) as sim, NomadClient(NomadSettings(address=sim.address)) as client:
        await wait_for_nodes_ready(sim)
        target = await build_backlog(sim, client, jobs=args.jobs, count=args.count)
        naive_events, naive_seconds = await asyncio.wait_for(ingest_naive(sim, target), PHASE_TIMEOUT_SECONDS)
        ours_events, ours_seconds = await asyncio.wait_for(ingest_ours(sim, client, target), PHASE_TIMEOUT_SECONDS)
        ours_rate, naive_rate = ours_events / ours_seconds, naive_events / naive_seconds
        print(f"ingest backlog: {ours_events} events in {target} raft indexes ({args.jobs} jobs x {args.count} allocs)")
        print(f"  ours  (EventStream + Informer, projected cache): {ours_rate:10,.0f} events/s ({ours_seconds:.2f} s)")
        print(f"  naive (readline + json.loads + whole payloads): {naive_rate:10,.0f} events/s ({naive_seconds:.2f} s)")
        print(f"  ratio ours/naive: {ours_rate / naive_rate:.2f}x   (target: ours >= 30,000 events/s)")

    async with start_simulator(fast_sim_config()) as sim:
        await wait_for_nodes_ready(sim)
        ours, bare = await latency(sim, jobs=args.latency_jobs)
        print(f"event -> reconcile latency over {len(ours)} job registers (from just before the register call):")
        for label, values in (("operator reconcile start", ours), ("bare EventStream arrival", bare)):
            p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
            print(f"  {label}: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
        print(f"  ratio of medians operator/bare: {statistics.median(ours) / statistics.median(bare):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--latency-jobs", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
