"""Benchmark: events per second end to end, simulator -> `EventStream` -> consumer, against a bare aiohttp line
reader of the same stream (the ceiling).

Why: informers must keep up with a busy cluster's allocation churn (target: >= 50,000 events/s of ~2 KB allocation
events on one core). The ceiling is what aiohttp alone does when it only splits lines; the ratio shows what our
decoding, dedupe and event objects cost on top of it, and a naive `readline` + `json.loads` consumer shows what the
care buys.

The events come from the simulator, through its broker and its `/v1/event/stream` handler, in a separate process
(pinned to another core when there is one, so the client's figures are the client's). The simulator places a job of
a few hundred allocations and runs them, which gives real allocation objects in their pending and running forms
(1.5 to 3.5 KB encoded); a real cluster cannot churn fast enough to load one core, so a bench-only feeder then writes
client-update batches of those allocations through the state store (`SimCluster.store.write`, the path every
simulator write takes) for as long as a subscriber listens, keeping each subscriber's backlog below the broker's
drop threshold.

    python bench/bench_event_stream.py [--events 100000] [--rounds 3] [--batch 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from _harness import CLIENT_CORE, SERVER_CORE, RoundRates, pin_to_core, rates, server_process
from nomad_operator.nomad import NomadClient, NomadSettings, StreamReset
from nomad_operator.sim.cluster import SimCluster
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.encoding import drop_empty, dumps
from nomad_operator.sim.events import Event
from nomad_operator.sim.server import start_simulator

READ_BUFSIZE = 4 * 1024 * 1024
CHURN_JOB = "churn"
CHURN_ALLOCATIONS = 300
SIM_NODES = 10
# The feeder pauses while a subscriber has this many lines waiting (the broker drops one at 512).
BACKLOG_HIGH = 64
FEEDER_PAUSE_S = 0.0005


def churn_job() -> dict[str, Any]:
    return {
        "ID": CHURN_JOB,
        "Datacenters": ["*"],
        "TaskGroups": [
            {
                "Name": "app",
                "Count": CHURN_ALLOCATIONS,
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "churn", "PortLabel": "http", "Provider": "nomad"}],
                "Tasks": [
                    {
                        "Name": "server",
                        "Driver": "docker",
                        "Config": {"image": "traefik/whoami:v1.10", "ports": ["http"]},
                        "Resources": {"CPU": 20, "MemoryMB": 16},
                    }
                ],
            }
        ],
    }


def allocation_events(cluster: SimCluster) -> list[Event]:
    """Events of the churn job's allocations as the store emits them, in their pending and their running forms."""
    events = []
    for alloc in cluster.store.allocs_of_job(("default", CHURN_JOB)):
        running = drop_empty({key: value for key, value in alloc.items() if key != "Job"})
        pending = dict(running, ClientStatus="pending", ClientDescription="No tasks have started")
        pending.pop("TaskStates", None)
        for payload in (pending, running):
            filter_keys = (alloc["JobID"], alloc.get("DeploymentID", ""))
            events.append(Event("Allocation", alloc["ID"], alloc["Namespace"], filter_keys, {"Allocation": payload}))
    return events


async def feed(cluster: SimCluster, events: list[Event], *, batch: int) -> None:
    """Bench-only load: client-update batches of real allocation events, written while anyone subscribes."""
    position = 0
    broker = cluster.broker
    while True:
        if broker.subscriber_count == 0 or broker.largest_backlog >= BACKLOG_HIGH:
            await asyncio.sleep(FEEDER_PAUSE_S)
            continue
        with cluster.store.write("AllocationUpdated") as txn:
            for _ in range(batch):
                txn.emit(events[position])
                position = (position + 1) % len(events)
        await asyncio.sleep(0)  # let the stream handlers write


def _server_process(batch: int, port_queue: Any) -> None:
    pin_to_core(SERVER_CORE)

    async def main() -> None:
        config = SimConfig(nodes=SIM_NODES, task_start=0.01, node_ready=0.01, event_heartbeat=1.0)
        async with start_simulator(config, host="127.0.0.1", port=0) as sim:
            cluster = sim.cluster
            while any(node["Status"] != "ready" for node in cluster.store.nodes.values()):
                await cluster.store.wait_beyond(("nodes",), cluster.store.index, timeout=1.0)
            cluster.jobs.register({"Job": churn_job()}, path_id=None, namespace="default")
            while sum(a["ClientStatus"] == "running" for a in cluster.store.allocs.values()) < CHURN_ALLOCATIONS:
                await cluster.store.wait_beyond(("allocs",), cluster.store.index, timeout=1.0)
            events = allocation_events(cluster)
            sizes = [len(dumps(event.payload)) for event in events]
            port_queue.put((sim.port, statistics.mean(sizes), min(sizes), max(sizes)))
            await feed(cluster, events, batch=batch)

    asyncio.run(main())


@contextlib.asynccontextmanager
async def raw_event_stream(url: str) -> AsyncIterator[aiohttp.StreamReader]:
    """The whole event stream from index 0 as aiohttp's line reader: what the two baselines consume."""
    async with (
        aiohttp.ClientSession(read_bufsize=READ_BUFSIZE) as session,
        session.get(f"{url}/v1/event/stream", params={"index": "0", "namespace": "*"}) as response,
    ):
        yield response.content


async def bare_lines(url: str, count: int) -> int:
    """The ceiling: aiohttp splitting lines, nothing decoded."""
    seen = 0
    async with raw_event_stream(url) as lines:
        async for line in lines:
            seen += line.count(b'"Topic":')  # events in the batch, counted without decoding it
            if seen >= count:
                break
    return seen


async def naive_json(url: str, count: int) -> int:
    """A naive consumer: aiohttp lines + json.loads, as a first implementation would do."""
    seen = 0
    async with raw_event_stream(url) as lines:
        async for line in lines:
            frame = json.loads(line)
            seen += len(frame.get("Events", ()))
            if seen >= count:
                break
    return seen


async def event_stream(url: str, count: int) -> int:
    """Ours: NomadClient.event_stream, events counted as the consumer sees them."""
    seen = 0
    async with NomadClient(NomadSettings(address=url)) as client:
        stream = client.event_stream({"*": ["*"]}, after_index=0)
        async with stream:
            async for item in stream:
                if isinstance(item, StreamReset):
                    raise RuntimeError(f"unexpected reset during the benchmark: {item.reason}")
                seen += len(item.events)
                if seen >= count:
                    break
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50, help="events per raft batch (one NDJSON line)")
    args = parser.parse_args()

    with server_process(_server_process, args.batch, ready_timeout=120) as (port, average_size, smallest, largest):
        url = f"http://127.0.0.1:{port}"
        pin_to_core(CLIENT_CORE)
        print(
            f"simulator allocation events: {average_size:.0f} bytes on average ({smallest}..{largest}); "
            f"{args.batch} a batch; {args.events} events a round, {args.rounds} rounds"
        )
        readers: list[tuple[str, Callable[[str, int], Awaitable[int]]]] = [
            ("aiohttp lines only (ceiling)", bare_lines),
            ("aiohttp lines + json.loads (naive)", naive_json),
            ("EventStream (ours)", event_stream),
        ]
        results: dict[str, RoundRates] = {}
        for name, reader in readers:
            rounds = [asyncio.run(rates(functools.partial(reader, url, args.events))) for _ in range(args.rounds)]
            result = results[name] = RoundRates.of(rounds)
            print(
                f"{name:36s} {result.wall:>9,.0f} events/s {result.cpu:>9,.0f} events/CPU-s  (rounds: {result.shown()})"
            )
        ours = results["EventStream (ours)"]
        for baseline in ("aiohttp lines only (ceiling)", "aiohttp lines + json.loads (naive)"):
            wall_ratio, cpu_ratio = ours.wall / results[baseline].wall, ours.cpu / results[baseline].cpu
            print(f"EventStream / {baseline}: {wall_ratio:.2f} (wall), {cpu_ratio:.2f} (CPU)")
        print(f"EventStream MB/s: {ours.wall * average_size / 1e6:.0f}")


if __name__ == "__main__":
    main()
