"""Benchmark of memory: the RSS of a whole operator process caching 1,000 jobs and 10,000 allocations.

The simulator runs in this process and holds the cluster; each measurement runs in a fresh subprocess, so its RSS is
the operator's alone (interpreter, imports, client, cache, queues). Two figures a process: the peak RSS (`VmHWM`, the
one-off high of the first list) and the steady RSS once the caches are synced and every job has been reconciled.

- operator: an `Operator` with one controller watching jobs and allocations with typical declared fields
  (job Meta and Status; allocation JobID, ClientStatus, DesiredStatus, TaskStates.*.State); its informer lists page by
  page (`--page-size`, default the informer's);
- operator-unpaged, the baseline in the same run: the same operator listing each kind in one page, as it did before
  paging (the whole list's JSON and decoded dicts alive at once before projection);
- naive: a process that lists everything with the same client and keeps whole objects (full jobs, allocation stubs)
  in dicts: what a cache without projection costs;
- floor: the same imports and nothing else.

Run: `.venv/bin/python bench/bench_operator_memory.py [--jobs 1000] [--count 10] [--page-size 500]`
(target: operator <= 100 MB peak RSS for the whole process). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch, job_of_allocation
from nomad_operator.runtime.operator import Operator, OperatorSettings

MODES = ("operator", "operator-unpaged", "naive", "floor")
UNPAGED_PAGE_SIZE = 2**31 - 1
"""A page size no list reaches: every kind in one page, the informer as it listed before paging."""
CHILD_TIMEOUT_SECONDS = 300.0


def rss_mb(field: str = "VmRSS") -> float:
    """The process's current RSS, or with `field="VmHWM"` its peak RSS so far, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trimmed_rss_mb() -> float:
    """RSS after a full collection and glibc's malloc_trim: how much of the RSS is the list's freed peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


async def child(mode: str, address: str, jobs: int, page_size: int | None) -> dict[str, Any]:
    if mode == "floor":
        return {"rss_mb": rss_mb(), "peak_rss_mb": rss_mb("VmHWM")}
    client = NomadClient(NomadSettings(address=address))
    await client.__aenter__()
    if mode == "naive":
        stubs = (await client.list_jobs(namespace="*")).value
        kept = {stub["ID"]: (await client.read_job(stub["ID"], namespace=stub["Namespace"])).value for stub in stubs}
        allocs = {alloc["ID"]: alloc for alloc in (await client.list_allocations(namespace="*")).value}
        await client.close()
        return {"rss_mb": rss_mb(), "peak_rss_mb": rss_mb("VmHWM"), "jobs": len(kept), "allocations": len(allocs)}
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
    if mode == "operator-unpaged":
        operator.informer.list_page_size = UNPAGED_PAGE_SIZE
    elif page_size is not None:
        operator.informer.list_page_size = page_size
    started = time.perf_counter()
    await operator.start()
    await operator.informer.wait_synced()
    synced = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), CHILD_TIMEOUT_SECONDS)
    figures = {
        "rss_mb": rss_mb(), "peak_rss_mb": rss_mb("VmHWM"), "page_size": operator.informer.list_page_size,
        "first_list_seconds": round(synced, 2),
        **{kind.lower(): size for kind, size in operator.cache.sizes().items()},
    }  # fmt: skip
    figures["rss_mb_after_gc_and_malloc_trim"] = trimmed_rss_mb()
    await operator.stop()
    return figures


async def measure(mode: str, address: str, jobs: int, page_size: int | None) -> dict[str, Any]:
    sizing = ["--page-size", str(page_size)] if page_size is not None else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, "--address", address, "--jobs", str(jobs), *sizing,
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
        results = {mode: await measure(mode, sim.address, args.jobs, args.page_size) for mode in MODES}
    for mode in MODES:
        figures = results[mode]
        print(
            f"  {mode:16s}: peak {figures['peak_rss_mb']:7.1f} MB  steady {figures['rss_mb']:7.1f} MB RSS  "
            f"{json.dumps(figures)}"
        )
    paged, unpaged, naive, floor = (results[mode] for mode in MODES)
    print(
        f"  peak RSS, paged/unpaged: {paged['peak_rss_mb'] / unpaged['peak_rss_mb']:.2f}x; "
        f"steady RSS, paged/unpaged: {paged['rss_mb'] / unpaged['rss_mb']:.2f}x (target: peak <= 100 MB)"
    )
    print(f"  operator (paged) peak/naive peak: {paged['peak_rss_mb'] / naive['peak_rss_mb']:.2f}x")
    above = {mode: results[mode]["peak_rss_mb"] - floor["rss_mb"] for mode in MODES}
    print(
        f"  peak above the import floor: paged {above['operator']:.1f} MB, "
        f"unpaged {above['operator-unpaged']:.1f} MB, naive {above['naive']:.1f} MB"
    )


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
    parser.add_argument("--page-size", type=int, default=None, help="the operator's list page size (default: its own)")
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(asyncio.run(child(arguments.child, arguments.address, arguments.jobs, arguments.page_size))))
    else:
        asyncio.run(main(arguments))
