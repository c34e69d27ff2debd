"""Benchmark: how long the simulator takes to place and start everything at the scale it must hold (100 nodes,
1,000 jobs, 10,000 allocations), and its peak memory.

Two baselines are measured in the same run, each 1/10 of the work:
- the whole cluster at a tenth of the size (10 nodes, 100 jobs, 1,000 allocations): with linear scaling the full run
  costs 10x; placement scores every ready node for each allocation, as Nomad's stack does without its candidate
  limit, so the expected ratio here is above 10 (work x nodes);
- the full 100 nodes with a tenth of the jobs (100 jobs, 1,000 allocations): this isolates how an evaluation's cost
  grows with the cluster's allocation count. The state keeps per-node usage up to date, so the expected ratio is
  about 10; a scan of every other job's allocations per evaluation shows as a ratio well above it.
Each size runs in its own process so peak RSS is its own.
Run: `.venv/bin/python bench/bench_sim_scale.py [--scale 1.0]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from _harness import peak_rss_mib
from nomad_operator.sim.cluster import SimCluster
from nomad_operator.sim.config import SimConfig

ALLOCS_PER_JOB = 10


def _job(number: int) -> dict[str, Any]:
    return {
        "Job": {
            "ID": f"job-{number:04d}",
            "Type": "service",
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": ALLOCS_PER_JOB,
                    "Update": {"MaxParallel": 0},
                    "Tasks": [{"Name": "task", "Driver": "exec", "Resources": {"CPU": 50, "MemoryMB": 64}}],
                }
            ],
        }
    }


async def _run(nodes: int, jobs: int) -> dict[str, float]:
    cluster = SimCluster(SimConfig(nodes=nodes, task_start=0.001, task_stop=0.001, node_ready=0.001))
    await cluster.start()
    try:
        while any(node["Status"] != "ready" for node in cluster.store.nodes.values()):
            await cluster.store.wait_beyond(("nodes",), cluster.store.index, timeout=1.0)
        started = time.perf_counter()
        for number in range(jobs):
            cluster.jobs.register(_job(number), path_id=None, namespace="default")
        await cluster.wait_idle()
        placed = time.perf_counter() - started
        expected = jobs * ALLOCS_PER_JOB
        while sum(1 for a in cluster.store.allocs.values() if a.get("ClientStatus") == "running") < expected:
            await cluster.store.wait_beyond(("allocs",), cluster.store.index, timeout=1.0)
        running = time.perf_counter() - started
        return {
            "nodes": nodes,
            "jobs": jobs,
            "allocs": len(cluster.store.allocs),
            "placed_s": placed,
            "running_s": running,
            "events": cluster.broker.published,
            "peak_rss_mb": peak_rss_mib(),
        }
    finally:
        await cluster.close()


def _measure(nodes: int, jobs: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(nodes), str(jobs)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size to run (default 1.0)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_run(*args.child))))
        return
    full_nodes, full_jobs = max(1, round(100 * args.scale)), max(1, round(1000 * args.scale))
    small = _measure(max(1, full_nodes // 10), max(1, full_jobs // 10))
    few_jobs = _measure(full_nodes, max(1, full_jobs // 10))
    full = _measure(full_nodes, full_jobs)
    for label, result in (("1/10 cluster", small), ("full nodes, 1/10 jobs", few_jobs), ("full size", full)):
        print(
            f"{label:22} nodes={result['nodes']:>4} jobs={result['jobs']:>5} allocs={result['allocs']:>6} "
            f"placed={result['placed_s']:7.2f}s running={result['running_s']:7.2f}s "
            f"events={result['events']:>6} peak_rss={result['peak_rss_mb']:7.1f} MiB"
        )
    print(
        f"time ratio full / 1/10 cluster: {full['running_s'] / small['running_s']:.1f}x "
        "for 10x the work on 10x the nodes"
    )
    print(
        f"time ratio full / 1/10 jobs on the same nodes: {full['running_s'] / few_jobs['running_s']:.1f}x "
        "for 10x the allocations (10x = linear)"
    )
    print(f"memory ratio full / 1/10 cluster: {full['peak_rss_mb'] / small['peak_rss_mb']:.1f}x")


if __name__ == "__main__":
    main()
