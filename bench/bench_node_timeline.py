"""Timeline of the unplug promise on the simulator: how fast the node controller reports, and how the cluster heals.

Two scenarios on an in-process simulator (pi1..pi3, heartbeat TTL and grace set by flags), the node controller
driven level by level as the runtime drives it (re-list the cluster into its cache, reconcile, repeat):

1. whoami with `distinct_hosts`: unplug pi2 -> the controller reports whoami degraded 2/3 with its reason;
   plug pi2 -> whoami 3/3 again (Nomad's blocked evaluation places it) and the incident closed.
2. whoami without `distinct_hosts`: unplug pi2 -> three instances on two nodes; plug pi2 -> rebalanced to one per
   node. The allocations the rebalancer stopped are printed against the minimum needed.

Baselines, measured in the same run: the heartbeat TTL plus grace (Nomad itself cannot know sooner that a node is
gone; the report's ratio to it is printed), and scenario 2 without the controller (Nomad never moves work back: the
time it stays lopsided is printed for the same window).

Run: `.venv/bin/python bench/bench_node_timeline.py [--ttl 1.0] [--grace 1.0] [--window 10]`. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from nomad_operator.controllers.nodes import NODES_KEY, REBALANCE_KEY, NodeController, NodePolicy
from nomad_operator.controllers.nodes.rebalance import minimum_moves
from nomad_operator.nomad import NO_RETRY, NomadClient, NomadSettings
from nomad_operator.runtime import Cache
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

STEP_S = 0.01
POLICY = NodePolicy(rebalance_cooldown=0.0)


def whoami(*, distinct: bool) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": "whoami", "Count": 3, "Tasks": [
        {"Name": "whoami", "Driver": "docker", "Config": {"image": "traefik/whoami"},
         "Resources": {"CPU": 50, "MemoryMB": 32}}]}  # fmt: skip
    if distinct:
        group["Constraints"] = [{"Operand": "distinct_hosts", "RTarget": "true"}]
    return {"ID": "whoami", "Name": "whoami", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [group]}


class Bench:
    def __init__(self, sim: RunningSimulator, nomad: NomadClient, *, with_controller: bool) -> None:
        self.sim, self.nomad = sim, nomad
        self.controller: NodeController | None = None
        self.cache: Cache | None = None
        if with_controller:
            self.controller = NodeController(nomad=nomad, policy=POLICY, registry=CollectorRegistry())
            self.cache = Cache.for_controllers(self.controller.controllers())
            self.controller.attach(self.cache)

    async def step(self) -> None:
        if self.controller is None or self.cache is None:
            await asyncio.sleep(STEP_S)
            return
        nodes = await self.nomad.list_nodes()
        self.cache.replace_all("Node", [(await self.nomad.read_node(n["ID"])).value for n in nodes.value],
                               index=nodes.index)  # fmt: skip
        jobs = await self.nomad.list_jobs()
        self.cache.replace_all("Job", [(await self.nomad.read_job(j["ID"])).value for j in jobs.value],
                               index=jobs.index)  # fmt: skip
        for kind, listing in (("Allocation", self.nomad.list_allocations), ("Evaluation", self.nomad.list_evaluations),
                              ("Deployment", self.nomad.list_deployments)):  # fmt: skip
            result = await listing()
            self.cache.replace_all(kind, result.value, index=result.index)
        await self.controller.reconcile_nodes(NODES_KEY)
        await self.controller.reconcile_rebalance(REBALANCE_KEY)
        await asyncio.sleep(STEP_S)

    async def until(self, check: Callable[[], bool], *, limit: float) -> float | None:
        """Seconds until `check` holds, or None if it did not within `limit`."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            await self.step()
            if check():
                return time.perf_counter() - start
        return None

    def placements(self) -> list[str]:
        store = self.sim.cluster.store
        names = {n["ID"]: n["Name"] for n in store.nodes.values()}
        return sorted(names[a["NodeID"]] for a in store.allocs.values() if a["JobID"] == "whoami"
                      and a["DesiredStatus"] == "run" and a["ClientStatus"] == "running")  # fmt: skip


async def run_scenario(args: argparse.Namespace, *, distinct: bool, with_controller: bool) -> dict[str, Any]:
    config = SimConfig(heartbeat_ttl=args.ttl, heartbeat_grace=args.grace, task_start=0.02, task_stop=0.02,
                       node_ready=0.02, reschedule_delay=0.05, event_heartbeat=1.0,
                       deployment_time_scale=0.001)  # fmt: skip
    async with start_simulator(config) as sim, NomadClient(NomadSettings(address=sim.address), retry=NO_RETRY) as nomad:
        bench = Bench(sim, nomad, with_controller=with_controller)
        await bench.until(lambda: all(n["Status"] == "ready" for n in sim.cluster.store.nodes.values()), limit=30)
        await nomad.register_job(whoami(distinct=distinct))
        await bench.until(lambda: bench.placements() == ["pi1", "pi2", "pi3"], limit=30)
        figures: dict[str, Any] = {}
        sim.cluster.unplug("pi2")
        if distinct and bench.controller is not None:
            controller = bench.controller

            def reported() -> bool:
                impact = controller.incidents.job_impact("default", "whoami")
                return impact is not None and impact.degraded and bool(impact.reason)

            figures["degraded_report_s"] = await bench.until(reported, limit=args.window + args.ttl + args.grace)
        else:
            await bench.until(lambda: len(bench.placements()) == (2 if distinct else 3)
                              and "pi2" not in bench.placements(), limit=args.window + args.ttl + args.grace)
        counts = [bench.placements().count(name) for name in ("pi1", "pi2", "pi3")]
        figures["minimum_moves"] = minimum_moves(counts)
        sim.cluster.plug("pi2")
        figures["restored_s"] = await bench.until(lambda: bench.placements() == ["pi1", "pi2", "pi3"],
                                                  limit=args.window)  # fmt: skip
        figures["stops"] = bench.controller.tracker.stops if bench.controller is not None else 0
        return figures


def _seconds(value: float | None, window: float) -> str:
    return f"{value:.3f}s" if value is not None else f"never within {window:.0f}s"


async def main_async(args: argparse.Namespace) -> None:
    heartbeat = args.ttl + args.grace
    one = await run_scenario(args, distinct=True, with_controller=True)
    two = await run_scenario(args, distinct=False, with_controller=True)
    base = await run_scenario(args, distinct=False, with_controller=False)
    print(f"heartbeat TTL + grace (Nomad's own floor for noticing a node is gone): {heartbeat:.3f}s")
    print("scenario 1: whoami count=3 with distinct_hosts")
    report = one["degraded_report_s"]
    print(f"  unplug pi2 -> degraded 2/3 reported with reason: {_seconds(report, args.window)}"
          + (f"  (ratio to TTL+grace: {report / heartbeat:.2f})" if report is not None else ""))  # fmt: skip
    print(f"  plug pi2   -> fully restored 3/3:               {_seconds(one['restored_s'], args.window)}")
    print(f"  allocations stopped by the rebalancer: {one['stops']} (minimum needed: 0)")
    print("scenario 2: whoami count=3 without distinct_hosts")
    print(f"  plug pi2   -> rebalanced one per node:          {_seconds(two['restored_s'], args.window)}")
    print(f"  allocations stopped by the rebalancer: {two['stops']} (minimum needed: {two['minimum_moves']})")
    print("baseline: scenario 2 without the node controller (Nomad alone)")
    print(f"  plug pi2   -> rebalanced one per node:          {_seconds(base['restored_s'], args.window)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=1.0, help="heartbeat TTL in seconds (default 1.0)")
    parser.add_argument("--grace", type=float, default=1.0, help="heartbeat grace in seconds (default 1.0)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds to wait for each outcome (default 10)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
