"""The node controller against the simulator over real HTTP: incidents, flap damping, rebalancing, leadership.

The cache is filled by listing the simulator (list-then-read, as an informer's re-list does) before each reconcile,
so every step is the level-based reconcile the runtime runs, against the cluster as Nomad reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from nomad_operator.controllers.nodes import NODES_KEY, REBALANCE_KEY, NodeController, NodePolicy
from nomad_operator.controllers.nodes.defaults import HOLDS_VARIABLE_PATH
from nomad_operator.controllers.nodes.node_state_store import POLICY_VARIABLE_PATH, STATUS_VARIABLE_PATH
from nomad_operator.nomad import NO_RETRY, NomadClient, NomadSettings, NotFound
from nomad_operator.runtime import Cache
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

FAST = {"heartbeat_ttl": 0.2, "heartbeat_grace": 0.2, "task_start": 0.02, "task_stop": 0.02, "node_ready": 0.02,
        "reschedule_delay": 0.05, "deployment_time_scale": 0.001, "event_heartbeat": 0.2}  # fmt: skip
DEADLINE_S = 20.0
FLAPPY = NodePolicy(flap_threshold=3, flap_window=60.0, stable_for=0.6, rebalance_cooldown=0.05)


class Leader:
    def __init__(self, leading: bool = True) -> None:
        self.is_leader = leading


class Harness:
    """A simulator, a client, the controller and its cache; `step()` re-lists and reconciles both keys."""

    def __init__(self, sim: RunningSimulator, nomad: NomadClient, controller: NodeController, cache: Cache) -> None:
        self.sim, self.nomad, self.controller, self.cache = sim, nomad, controller, cache

    async def refresh(self) -> None:
        nodes = await self.nomad.list_nodes()
        full = [(await self.nomad.read_node(stub["ID"])).value for stub in nodes.value]
        self.cache.replace_all("Node", full, index=nodes.index)
        jobs = await self.nomad.list_jobs()
        self.cache.replace_all("Job", [(await self.nomad.read_job(j["ID"])).value for j in jobs.value],
                               index=jobs.index)  # fmt: skip
        for kind, listing in (("Allocation", self.nomad.list_allocations), ("Evaluation", self.nomad.list_evaluations),
                              ("Deployment", self.nomad.list_deployments)):  # fmt: skip
            result = await listing()
            self.cache.replace_all(kind, result.value, index=result.index)

    async def step(self) -> None:
        await self.refresh()
        await self.controller.reconcile_nodes(NODES_KEY)
        await self.controller.reconcile_rebalance(REBALANCE_KEY)

    async def until(self, check: Callable[[], Awaitable[Any]], *, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        last: Any = None
        while loop.time() < deadline:
            await self.step()
            last = await check()
            if last:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def node_id(self, name: str) -> str:
        return next(n["ID"] for n in self.sim.cluster.store.nodes.values() if n["Name"] == name)

    def placements(self, job_id: str) -> list[str]:
        """Names of the nodes running the job's live allocations."""
        store = self.sim.cluster.store
        names = {n["ID"]: n["Name"] for n in store.nodes.values()}
        return sorted(names[a["NodeID"]] for a in store.allocs.values()
                      if a["JobID"] == job_id and a["DesiredStatus"] == "run"
                      and a["ClientStatus"] in ("running", "pending"))  # fmt: skip


def service_job(job_id: str, *, distinct: bool, job_type: str = "service", meta: dict[str, str] | None = None,
                count: int = 3) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": job_id, "Count": count,
        "Tasks": [{"Name": job_id, "Driver": "docker", "Config": {"image": "traefik/whoami"},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}],
    }  # fmt: skip
    if distinct:
        group["Constraints"] = [{"Operand": "distinct_hosts", "RTarget": "true"}]
    if job_type == "system":
        group.pop("Count")
    return {"ID": job_id, "Name": job_id, "Type": job_type, "Datacenters": ["dc1"], "Meta": meta,
            "TaskGroups": [group]}  # fmt: skip


@pytest.fixture
async def make_harness() -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    stack: list[Any] = []

    async def make(*, policy: NodePolicy | None = FLAPPY, leading: bool = True, sim: RunningSimulator | None = None,
                   **sim_overrides: Any) -> Harness:  # fmt: skip
        if sim is None:
            context = start_simulator(SimConfig(**{**FAST, **sim_overrides}), host="127.0.0.1", port=0)
            sim = await context.__aenter__()
            stack.append(context)
        client = NomadClient(NomadSettings(address=sim.address), retry=NO_RETRY)
        await client.__aenter__()
        stack.append(client)
        controller = NodeController(nomad=client, leadership=Leader(leading), policy=policy,
                                    registry=CollectorRegistry())  # fmt: skip
        cache = Cache.for_controllers(controller.controllers())
        controller.attach(cache)
        harness = Harness(sim, client, controller, cache)

        async def all_ready() -> bool:
            return all(n["Status"] == "ready" for n in sim.cluster.store.nodes.values())

        await harness.until(all_ready, what="all nodes ready")
        return harness

    yield make
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


async def status_of(harness: Harness) -> dict[str, Any]:
    try:
        variable = (await harness.nomad.read_variable(STATUS_VARIABLE_PATH)).value
    except NotFound:
        return {}
    result: dict[str, Any] = orjson.loads(variable["Items"]["status"])
    return result


async def test_unplugged_node_opens_an_incident_with_the_blocked_reason(make_harness: Any) -> None:
    h = await make_harness()
    await h.nomad.register_job(service_job("whoami", distinct=True))
    await h.until(lambda: _async(h.placements("whoami") == ["pi1", "pi2", "pi3"]), what="whoami 3/3")
    h.sim.cluster.unplug("pi2")

    async def degraded() -> Any:
        return h.controller.incidents.job_impact("default", "whoami")

    impact = await h.until(degraded, what="whoami reported degraded")
    impact = await h.until(lambda: _async(_blocked(h)), what="the blocked reason")
    assert (impact.running, impact.desired, impact.reason) == (2, 3, "distinct_hosts")
    assert impact.down_nodes == ("pi2",)
    assert impact.message.startswith("2/3 running (node pi2 down): 2/3 placed; 1 blocked by distinct_hosts")
    [incident] = h.controller.incidents.open_incidents()
    assert incident.node_name == "pi2"
    assert sum(incident.lost_per_job().values()) == 1
    metrics = h.controller.metrics
    assert metrics.incidents._value.get() == 1  # the gauge
    assert metrics.lost_capacity.labels("default", "whoami", "blocked", "distinct_hosts")._value.get() == 1
    status = await h.until(lambda: status_of(h), what="status written")
    assert status["openIncidents"][0]["node"] == "pi2"
    assert status["jobs"][0]["reason"] == "distinct_hosts"

    h.sim.cluster.plug("pi2")
    await h.until(lambda: _async(h.placements("whoami") == ["pi1", "pi2", "pi3"]), what="whoami back to 3/3")
    await h.until(lambda: _async(not h.controller.incidents.open_incidents()), what="incident closed")
    assert h.controller.incidents.job_impact("default", "whoami") is None
    assert h.controller.incidents.closed_incidents()[0].ended_at is not None
    assert metrics.incidents._value.get() == 0
    assert h.controller.tracker.stops == 0  # distinct_hosts placed the third itself: nothing to rebalance


def _blocked(h: Harness) -> Any:
    impact = h.controller.incidents.job_impact("default", "whoami")
    return impact if impact is not None and impact.reason else None


async def _async(value: Any) -> Any:
    return value


async def test_rebalance_restores_one_per_node_one_stop_at_a_time(make_harness: Any) -> None:
    h = await make_harness()
    await h.nomad.register_job(service_job("whoami", distinct=False))
    await h.nomad.register_job(service_job("pinned", distinct=False, meta={"nomad-operator.rebalance": "false"}))
    await h.nomad.register_job(service_job("agent", distinct=False, job_type="system"))
    await h.until(lambda: _async(h.placements("whoami") == ["pi1", "pi2", "pi3"]), what="whoami spread")
    h.sim.cluster.unplug("pi2")
    await h.until(lambda: _async(len(h.placements("whoami")) == 3 and "pi2" not in h.placements("whoami")),
                  what="three instances on two nodes")  # fmt: skip
    await h.until(lambda: _async(len(h.placements("pinned")) == 3), what="pinned replaced")
    h.sim.cluster.plug("pi2")
    most_in_flight = 0

    async def balanced() -> bool:
        nonlocal most_in_flight
        stopping = [a for a in h.sim.cluster.store.allocs.values()
                    if a["JobID"] == "whoami" and a["DesiredStatus"] == "stop" and a["ClientStatus"] == "running"]
        most_in_flight = max(most_in_flight, len(stopping))
        return h.placements("whoami") == ["pi1", "pi2", "pi3"]

    await h.until(balanced, what="whoami one per node again")
    assert h.controller.tracker.stops == 1  # the minimum needed
    assert most_in_flight <= 1
    assert h.controller.metrics.rebalance_stops.labels("default", "whoami")._value.get() == 1
    await h.until(lambda: _async(not h.controller.tracker.armed()), what="rebalancing done")
    assert "pi2" not in h.placements("pinned")  # opted out: left lopsided
    assert h.controller.metrics.rebalance_stops.labels("default", "pinned")._value.get() == 0


async def test_dry_run_reports_and_stops_nothing(make_harness: Any) -> None:
    h = await make_harness(policy=NodePolicy(rebalance_dry_run=True, rebalance_cooldown=0.0))
    await h.nomad.register_job(service_job("whoami", distinct=False))
    await h.until(lambda: _async(len(h.placements("whoami")) == 3), what="whoami running")
    h.sim.cluster.unplug("pi2")
    await h.until(lambda: _async(len(h.placements("whoami")) == 3 and "pi2" not in h.placements("whoami")),
                  what="three instances on two nodes")  # fmt: skip
    h.sim.cluster.plug("pi2")
    metrics = h.controller.metrics
    await h.until(lambda: _async(metrics.rebalance_dry_runs.labels("default", "whoami")._value.get() == 1),
                  what="the dry run reported")  # fmt: skip
    assert "pi2" not in h.placements("whoami")
    assert h.controller.tracker.stops == 0


async def flap(h: Harness, name: str, times: int) -> None:
    node_id = h.node_id(name)
    # `until` checks the store after its reconcile step, so a node can change in between, unseen by the controller;
    # one more step after each wait makes sure the controller has seen the state the test goes on from.
    for _ in range(times):
        h.sim.cluster.unplug(name)
        await h.until(lambda: _async(h.sim.cluster.store.nodes[node_id]["Status"] == "down"), what=f"{name} down")
        await h.step()
        h.sim.cluster.plug(name)
        await h.until(lambda: _async(h.sim.cluster.store.nodes[node_id]["Status"] == "ready"), what=f"{name} ready")
        await h.step()


async def test_flapping_node_is_held_then_released_when_stable(make_harness: Any) -> None:
    h = await make_harness()
    await flap(h, "pi3", 3)
    node = h.sim.cluster.store.nodes[h.node_id("pi3")]
    assert node["SchedulingEligibility"] == "ineligible"
    holds = orjson.loads((await h.nomad.read_variable(HOLDS_VARIABLE_PATH)).value["Items"]["holds"])
    assert holds[node["ID"]]["node"] == "pi3"
    assert "went down 3 times" in holds[node["ID"]]["reason"]
    assert h.controller.metrics.held_nodes.labels("pi3")._value.get() == 1
    await h.until(lambda: _async(h.sim.cluster.store.nodes[node["ID"]]["SchedulingEligibility"] == "eligible"),
                  what="pi3 released after being stable")  # fmt: skip
    holds = orjson.loads((await h.nomad.read_variable(HOLDS_VARIABLE_PATH)).value["Items"]["holds"])
    assert holds == {}


async def test_only_one_node_held_and_released_when_another_fails(make_harness: Any) -> None:
    h = await make_harness(policy=NodePolicy(flap_threshold=2, flap_window=60.0, stable_for=60.0))
    await flap(h, "pi3", 2)
    await flap(h, "pi2", 2)
    eligibility = {n["Name"]: n["SchedulingEligibility"] for n in h.sim.cluster.store.nodes.values()}
    assert list(eligibility.values()).count("ineligible") == 1
    held = next(name for name, value in eligibility.items() if value == "ineligible")
    other = next(name for name in ("pi1", "pi2", "pi3") if name not in (held, "pi1"))
    h.sim.cluster.unplug(other)  # another failure: the held node must come back into service
    held_id = h.node_id(held)
    await h.until(lambda: _async(h.sim.cluster.store.nodes[held_id]["SchedulingEligibility"] == "eligible"),
                  what=f"{held} released because {other} went down")  # fmt: skip


async def test_standby_replica_never_writes(make_harness: Any) -> None:
    h = await make_harness(leading=False)
    await flap(h, "pi3", 3)
    assert h.sim.cluster.store.nodes[h.node_id("pi3")]["SchedulingEligibility"] == "eligible"
    assert h.controller.incidents.closed_incidents()  # it still keeps the record
    with pytest.raises(NotFound):
        await h.nomad.read_variable(HOLDS_VARIABLE_PATH)
    assert await status_of(h) == {}


async def test_new_leader_adopts_holds_and_releases_them(make_harness: Any) -> None:
    first = await make_harness()
    await flap(first, "pi3", 3)
    pi3 = first.node_id("pi3")
    assert first.sim.cluster.store.nodes[pi3]["SchedulingEligibility"] == "ineligible"
    # A new leader takes over; it never saw pi3 flap, but the holds Variable says the hold is ours.
    second = await make_harness(sim=first.sim)
    assert set(second.controller.damper.held) == {pi3}
    await second.until(lambda: _async(second.sim.cluster.store.nodes[pi3]["SchedulingEligibility"] == "eligible"),
                       what="the adopted hold released")  # fmt: skip


async def test_a_person_made_ineligible_node_is_never_released(make_harness: Any) -> None:
    h = await make_harness()
    pi1 = h.node_id("pi1")
    await h.nomad.set_node_eligibility(pi1, False)
    await flap(h, "pi1", 3)
    await h.step()
    assert h.sim.cluster.store.nodes[pi1]["SchedulingEligibility"] == "ineligible"
    assert h.controller.damper.held == {}


async def test_bad_node_policy_keeps_the_defaults_and_says_why(make_harness: Any) -> None:
    h = await make_harness(policy=None)
    resource = {"apiVersion": "nomad-operator.io/v1alpha1", "kind": "NodePolicy",
                "metadata": {"name": "default"}, "spec": {"flapDamping": {"threshold": 0}}}  # fmt: skip
    await h.nomad.put_variable(POLICY_VARIABLE_PATH, {"resource": orjson.dumps(resource).decode()})
    h.controller._policy_read_at = None  # read it now rather than after the refresh period
    await h.step()
    assert "flapDamping.threshold" in h.controller.policy_error
    assert (await h.controller._policy()).flap_threshold == 3
    status = await status_of(h)
    assert "flapDamping.threshold" in status["policyError"]
    resource["spec"] = {"flapDamping": {"threshold": 7}}
    await h.nomad.put_variable(POLICY_VARIABLE_PATH, {"resource": orjson.dumps(resource).decode()})
    h.controller._policy_read_at = None
    assert (await h.controller._policy()).flap_threshold == 7
    assert h.controller.policy_error == ""
