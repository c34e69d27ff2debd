"""Benchmark of memory: the RSS of a whole operator process caching 1,000 jobs and 10,000 allocations.

The simulator runs in this process and holds the cluster; each measurement runs in a fresh subprocess, so its RSS is
the operator's alone (interpreter, imports, client, cache, queues):

- operator: an `Operator` with one controller watching jobs and allocations with typical declared fields
  (job Meta and Status; allocation JobID, ClientStatus, DesiredStatus, TaskStates.*.State), read once its caches are
  synced and the first reconcile of every job is done;
- baseline, in the same run: a naive process that lists everything with the same client and keeps whole objects
  (full jobs, allocation stubs) in dicts: what a cache without projection costs;
- floor: the same imports and nothing else.

Run: `.venv/bin/python bench/bench_operator_memory.py [--jobs 1000] [--count 10]` (target: operator <= 100 MB RSS).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import sys
from pathlib import Path
from typing import Any

from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch, job_of_allocation
from nomad_operator.runtime.operator import Operator, OperatorSettings

MODES = ("operator", "naive", "floor")
CHILD_TIMEOUT_SECONDS = 300.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trimmed_rss_mb() -> float:
    """RSS after a full collection and glibc's malloc_trim: how much of the RSS is the list's freed peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


async def child(mode: str, address: str, jobs: int) -> dict[str, Any]:
    if mode == "floor":
        return {"rss_mb": rss_mb()}
    client = NomadClient(NomadSettings(address=address))
    await client.__aenter__()
    if mode == "naive":
        stubs = (await client.list_jobs(namespace="*")).value
        kept = {stub["ID"]: (await client.read_job(stub["ID"], namespace=stub["Namespace"])).value for stub in stubs}
        allocs = {alloc["ID"]: alloc for alloc in (await client.list_allocations(namespace="*")).value}
        await client.close()
        return {"rss_mb": rss_mb(), "jobs": len(kept), "allocations": len(allocs)}
    reconciled: set[ObjectKey] = set()
    done = asyncio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        reconciled.add(key)
        if len(reconciled) >= jobs:
            done.set()
        return Result()

    controller = Controller(
        "memory",
        reconcile=reconcile,
        watches=[
            Watch("Job", fields=("Meta", "Status")),
            Watch("Allocation", map_to=job_of_allocation,
                  fields=("JobID", "ClientStatus", "DesiredStatus", "TaskStates.*.State")),
        ],
    )  # fmt: skip
    operator = Operator(client=client, controllers=[controller], settings=OperatorSettings())
    await operator.start()
    await asyncio.wait_for(done.wait(), CHILD_TIMEOUT_SECONDS)
    figures = {"rss_mb": rss_mb(), **{kind.lower(): size for kind, size in operator.cache.sizes().items()}}
    figures["rss_mb_after_gc_and_malloc_trim"] = trimmed_rss_mb()
    await operator.stop()
    return figures


async def measure(mode: str, address: str, jobs: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, "--address", address, "--jobs", str(jobs),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT_SECONDS)
    if process.returncode != 0:
        raise RuntimeError(f"the {mode} child failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def main(args: argparse.Namespace) -> None:
    from nomad_operator.sim.server import start_simulator
    from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

    async with start_simulator(fast_sim_config(nodes=20)) as sim:
        await wait_for_nodes_ready(sim)
        async with NomadClient(NomadSettings(address=sim.address)) as client:
            for number in range(args.jobs):
                await client.register_job(job(f"job-{number:04d}", args.count))
        await sim.cluster.wait_idle()
        live = sum(1 for alloc in sim.cluster.store.allocs.values() if alloc.get("DesiredStatus") == "run")
        print(f"cluster: {len(sim.cluster.store.jobs)} jobs, {live} live allocations ({len(sim.cluster.store.allocs)})")
        results = {mode: await measure(mode, sim.address, args.jobs) for mode in MODES}
    for mode in MODES:
        print(f"  {mode:8s}: {results[mode]['rss_mb']:7.1f} MB RSS  {json.dumps(results[mode])}")
    operator, naive, floor = (results[mode]["rss_mb"] for mode in MODES)
    print(f"  operator/naive RSS ratio: {operator / naive:.2f}x (target: operator <= 100 MB)")
    print(f"  above the import floor: operator {operator - floor:.1f} MB, naive {naive - floor:.1f} MB")


def job(job_id: str, count: int) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": {"team": "bench"},
        "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
            "Name": "server", "Driver": "docker", "Config": {"image": "traefik/whoami"},
            "Resources": {"CPU": 10, "MemoryMB": 10}}]}],
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--address")
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(asyncio.run(child(arguments.child, arguments.address, arguments.jobs))))
    else:
        asyncio.run(main(arguments))
