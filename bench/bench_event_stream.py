"""Benchmark: events per second through `EventStream`, end to end, against a bare aiohttp line reader.

Why: informers must keep up with a busy cluster's allocation churn (target: >= 50,000 events/s of ~2 KB allocation
events on one core). The ceiling is what aiohttp alone does when it only splits lines; the ratio shows what our
decoding, dedupe and event objects cost on top of it, and a naive `readline` + `json.loads` consumer shows what the
care buys.

The server runs in a separate process (pinned to another core when there is one), so the client's figures are the
client's. `serve_event_stream` is the only server-side piece: swap it, or pass `--url` to read from a running
simulator or Nomad instead.

    python bench/bench_event_stream.py [--events 60000] [--rounds 3] [--url http://127.0.0.1:4646]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from nomad_operator.nomad import NomadClient, NomadSettings, StreamReset

READ_BUFSIZE = 4 * 1024 * 1024
WRITE_CHUNK_BYTES = 256 * 1024


def allocation_payload(rng: random.Random, *, job: str, index: int) -> dict[str, Any]:
    """An Allocation as Nomad's event stream carries it (no Job key; empty fields omitted), about 2 KB encoded."""
    task_events = [
        {
            "Type": kind,
            "Time": 1_700_000_000_000_000_000 + rng.randrange(10**12),
            "Message": "",
            "DisplayMessage": text,
            "Details": {"message": text} if kind == "Driver" else {},
        }
        for kind, text in (
            ("Received", "Task received by client"),
            ("Task Setup", "Building Task Directory"),
            ("Driver", "Downloading image"),
            ("Started", "Task started by client"),
        )[: rng.randrange(1, 5)]
    ]
    node = f"pi-{rng.randrange(1, 4)}"
    return {
        "ID": str(uuid.UUID(int=rng.getrandbits(128))),
        "Namespace": "default",
        "EvalID": str(uuid.UUID(int=rng.getrandbits(128))),
        "Name": f"{job}.{job}[{rng.randrange(3)}]",
        "NodeID": str(uuid.UUID(int=rng.getrandbits(128))),
        "NodeName": node,
        "JobID": job,
        "TaskGroup": job,
        "AllocatedResources": {
            "Tasks": {job: {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 128}, "Networks": None}},
            "Shared": {
                "DiskMB": 300,
                "Networks": [
                    {
                        "Mode": "host",
                        "IP": f"10.0.0.{rng.randrange(2, 250)}",
                        "DynamicPorts": [{"Label": "http", "Value": rng.randrange(20000, 32000), "To": 8080}],
                    }
                ],
                "Ports": [{"Label": "http", "Value": rng.randrange(20000, 32000), "To": 8080, "HostIP": "10.0.0.2"}],
            },
        },
        "Metrics": {
            "NodesEvaluated": 3,
            "NodesAvailable": {"dc1": 3},
            "ScoreMetaData": [
                {"NodeID": str(uuid.UUID(int=rng.getrandbits(128))), "Scores": {"binpack": rng.random()}}
                for _ in range(2)
            ],
            "AllocationTime": rng.randrange(10**6),
        },
        "Resources": {"CPU": 100, "Cores": 0, "MemoryMB": 128, "MemoryMaxMB": 0, "DiskMB": 300, "IOPS": 0},
        "SharedResources": {"DiskMB": 300},
        "NetworkStatus": {"InterfaceName": "eth0", "Address": f"172.26.64.{rng.randrange(2, 250)}", "DNS": None},
        "PreviousAllocation": str(uuid.UUID(int=rng.getrandbits(128))),
        "DesiredStatus": "run",
        "ClientStatus": rng.choice(["pending", "running", "running", "complete"]),
        "ClientDescription": "Tasks are running",
        "TaskStates": {
            job: {
                "State": "running",
                "Restarts": rng.randrange(3),
                "StartedAt": "2026-05-09T07:35:25.123456789Z",
                "Events": task_events,
            }
        },
        "DeploymentStatus": {"Healthy": True, "Timestamp": "2026-05-09T07:35:35.5Z", "ModifyIndex": index},
        "CreateIndex": index - 5,
        "ModifyIndex": index,
        "AllocModifyIndex": index - 5,
        "CreateTime": 1_700_000_000_000_000_000 + index,
        "ModifyTime": 1_700_000_000_000_000_000 + index * 7,
    }


def event_line(index: int, payload: dict[str, Any]) -> bytes:
    event = {
        "Topic": "Allocation",
        "Type": "AllocationUpdated",
        "Key": payload["ID"],
        "Namespace": "default",
        "FilterKeys": [payload["JobID"]],
        "Index": index,
        "Payload": {"Allocation": payload},
    }
    return orjson.dumps({"Events": [event], "Index": index}, option=orjson.OPT_SORT_KEYS) + b"\n"


def serve_event_stream(*, count: int, seed: int = 7) -> web.Application:
    """An NDJSON event-stream server: `{}`, then `count` one-event batches from the requested index, then silence."""
    rng = random.Random(seed)
    jobs = ["whoami", "fabio", "consul", "grafana", "prometheus"]
    templates = [event_line(0, allocation_payload(rng, job=rng.choice(jobs), index=1000)) for _ in range(512)]
    marker = b'"Index":0'

    async def stream(request: web.Request) -> web.StreamResponse:
        start = max(1, int(request.query.get("index", "1")))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"{}\n")
        buffer: list[bytes] = []
        size = 0
        for index in range(start, start + count):
            line = templates[index % len(templates)].replace(marker, b'"Index":%d' % index)
            buffer.append(line)
            size += len(line)
            if size >= WRITE_CHUNK_BYTES:
                await response.write(b"".join(buffer))
                buffer.clear()
                size = 0
        if buffer:
            await response.write(b"".join(buffer))
        await asyncio.sleep(3600)  # hold the stream open, as Nomad does, until the client leaves
        return response

    app = web.Application()
    app.router.add_get("/v1/event/stream", stream)
    return app


def _server_process(count: int, port_queue: Any) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})

    async def main() -> None:
        runner = web.AppRunner(serve_event_stream(count=count), shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def bare_lines(url: str, count: int) -> int:
    """The ceiling: aiohttp splitting lines, nothing decoded."""
    seen = 0
    async with (
        aiohttp.ClientSession(read_bufsize=READ_BUFSIZE) as session,
        session.get(f"{url}/v1/event/stream", params={"index": "1", "topic": "Allocation"}) as response,
    ):
        async for line in response.content:
            if line != b"{}\n":
                seen += 1
                if seen >= count:
                    break
    return seen


async def naive_json(url: str, count: int) -> int:
    """A naive consumer: aiohttp lines + json.loads, as a first implementation would do."""
    seen = 0
    async with (
        aiohttp.ClientSession(read_bufsize=READ_BUFSIZE) as session,
        session.get(f"{url}/v1/event/stream", params={"index": "1", "topic": "Allocation"}) as response,
    ):
        async for line in response.content:
            frame = json.loads(line)
            seen += len(frame.get("Events", ()))
            if seen >= count:
                break
    return seen


async def event_stream(url: str, count: int) -> int:
    """Ours: NomadClient.event_stream, events counted as the consumer sees them."""
    seen = 0
    async with NomadClient(NomadSettings(address=url)) as client:
        stream = client.event_stream({"Allocation": ["*"]}, after_index=0)
        async with stream:
            async for item in stream:
                if isinstance(item, StreamReset):
                    raise RuntimeError(f"unexpected reset during the benchmark: {item.reason}")
                seen += len(item.events)
                if seen >= count:
                    break
    return seen


async def measure(reader: Callable[[str, int], Awaitable[int]], url: str, count: int) -> tuple[float, float]:
    """Events per wall-clock second, and per CPU second of this process (steadier on a shared, busy machine)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    seen = await reader(url, count)
    return seen / (time.perf_counter() - started), seen / (time.process_time() - cpu_started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="read from this Nomad/simulator instead of the built-in server")
    args = parser.parse_args()

    process = None
    url = args.url
    if url is None:
        context = multiprocessing.get_context("spawn")
        port_queue = context.Queue()
        process = context.Process(target=_server_process, args=(args.events, port_queue), daemon=True)
        process.start()
        url = f"http://127.0.0.1:{port_queue.get(timeout=30)}"
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
    try:
        rng = random.Random(1)
        sizes = [len(event_line(1, allocation_payload(rng, job="whoami", index=1000))) for _ in range(200)]
        average_size = statistics.mean(sizes)
        print(
            f"event line size: {average_size:.0f} bytes on average; {args.events} events a round, {args.rounds} rounds"
        )
        readers: list[tuple[str, Callable[[str, int], Awaitable[int]]]] = [
            ("aiohttp lines only (ceiling)", bare_lines),
            ("aiohttp lines + json.loads (naive)", naive_json),
            ("EventStream (ours)", event_stream),
        ]
        results: dict[str, tuple[float, float]] = {}
        for name, reader in readers:
            rounds = [asyncio.run(measure(reader, url, args.events)) for _ in range(args.rounds)]
            wall = statistics.median(rate for rate, _ in rounds)
            cpu = statistics.median(rate for _, rate in rounds)
            results[name] = (wall, cpu)
            shown = ", ".join(f"{rate:,.0f}" for rate, _ in rounds)
            print(f"{name:36s} {wall:>9,.0f} events/s {cpu:>9,.0f} events/CPU-s  (rounds: {shown})")
        ours = results["EventStream (ours)"]
        for baseline in ("aiohttp lines only (ceiling)", "aiohttp lines + json.loads (naive)"):
            wall_ratio, cpu_ratio = ours[0] / results[baseline][0], ours[1] / results[baseline][1]
            print(f"EventStream / {baseline}: {wall_ratio:.2f} (wall), {cpu_ratio:.2f} (CPU)")
        print(f"EventStream MB/s: {ours[0] * average_size / 1e6:.0f}")
    finally:
        if process is not None:
            process.terminate()
            process.join(5)


if __name__ == "__main__":
    main()
