"""Scheduling scenarios over HTTP: a node unplugged and plugged back, distinct_hosts, system jobs following nodes,
alloc stop, drain and task failure with rescheduling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from nomad_operator.sim.server import RunningSimulator

Poll = Callable[..., Awaitable[Any]]


async def _get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _running(http: aiohttp.ClientSession, job_id: str) -> list[dict[str, Any]]:
    allocs = await _get(http, f"/v1/job/{job_id}/allocations")
    return [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]


async def _node_status(http: aiohttp.ClientSession, name: str) -> str:
    nodes = await _get(http, "/v1/nodes")
    return str(next(node["Status"] for node in nodes if node["Name"] == name))


async def test_unplugged_node_loses_its_alloc_and_blocks_the_replacement(
    sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("web")}) as response:
        assert response.status == 200

    async def three_running() -> list[dict[str, Any]] | None:
        running = await _running(http, "web")
        return running if len(running) == 3 else None

    running = await poll(three_running, what="three running allocations")
    assert sorted(a["NodeName"] for a in running) == ["pi1", "pi2", "pi3"]

    sim.cluster.unplug("pi2")
    await poll(lambda: _is(http, "pi2", "down"), what="pi2 down")
    nodes = await _get(http, "/v1/nodes")
    pi2 = next(node for node in nodes if node["Name"] == "pi2")
    node = await _get(http, f"/v1/node/{pi2['ID']}")
    assert node["Events"][-1]["Message"] == "Node heartbeat missed"

    async def lost_and_two_running() -> bool:
        allocs = await _get(http, "/v1/job/web/allocations")
        lost = [a for a in allocs if a["ClientStatus"] == "lost"]
        return len(lost) == 1 and len(await _running(http, "web")) == 2

    await poll(lost_and_two_running, what="one lost allocation and two running")
    allocs = await _get(http, "/v1/job/web/allocations")
    lost = next(a for a in allocs if a["ClientStatus"] == "lost")
    assert lost["NodeName"] == "pi2"
    assert lost["DesiredDescription"] == "alloc is lost since its node is down"

    async def blocked_eval() -> dict[str, Any] | None:
        evals = await _get(http, "/v1/job/web/evaluations")
        return next((e for e in evals if e["Status"] == "blocked"), None)

    blocked = await poll(blocked_eval, what="a blocked evaluation")
    assert blocked["StatusDescription"] == "created to place remaining allocations"
    assert blocked["FailedTGAllocs"]["web"]["ConstraintFiltered"]["distinct_hosts"] >= 1
    node_update = next(e for e in await _get(http, "/v1/job/web/evaluations") if e.get("BlockedEval") == blocked["ID"])
    assert node_update["TriggeredBy"] == "node-update"
    assert "web" in node_update["FailedTGAllocs"]
    summary = await _get(http, "/v1/job/web/summary")
    assert summary["Summary"]["web"]["Lost"] == 1
    assert summary["Summary"]["web"]["Running"] == 2

    sim.cluster.plug("pi2")
    await poll(lambda: _is(http, "pi2", "ready"), what="pi2 ready again")
    running = await poll(three_running, what="three running allocations after plug")
    assert sorted(a["NodeName"] for a in running) == ["pi1", "pi2", "pi3"]
    evals = await _get(http, "/v1/job/web/evaluations")
    assert not [e for e in evals if e["Status"] == "blocked"]


async def _is(http: aiohttp.ClientSession, name: str, status: str) -> bool:
    return await _node_status(http, name) == status


async def test_system_job_follows_nodes(
    sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("fabio", job_type="system", distinct=False)}) as response:
        assert response.status == 200

    async def on_nodes(expected: list[str]) -> bool:
        return sorted(a["NodeName"] for a in await _running(http, "fabio")) == expected

    await poll(lambda: on_nodes(["pi1", "pi2", "pi3"]), what="one system alloc per node")
    sim.cluster.unplug("pi3")
    await poll(lambda: _is(http, "pi3", "down"), what="pi3 down")
    await poll(lambda: on_nodes(["pi1", "pi2"]), what="system allocs on the two live nodes only")
    allocs = await _get(http, "/v1/job/fabio/allocations")
    assert [a["ClientStatus"] for a in allocs if a["NodeName"] == "pi3"] == ["lost"]
    job = await _get(http, "/v1/job/fabio")
    assert job["Status"] == "running"
    sim.cluster.plug("pi3")
    await poll(lambda: on_nodes(["pi1", "pi2", "pi3"]), what="system alloc back on pi3")


async def test_alloc_stop_creates_a_replacement(
    http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("api", count=2, distinct=False)}) as response:
        assert response.status == 200

    async def two_running() -> list[dict[str, Any]] | None:
        running = await _running(http, "api")
        return running if len(running) == 2 else None

    first = (await poll(two_running, what="two running"))[0]
    async with http.post(f"/v1/allocation/{first['ID']}/stop") as response:
        assert response.status == 200
        body = await response.json()
    evaluation = await _get(http, f"/v1/evaluation/{body['EvalID']}")
    assert evaluation["TriggeredBy"] == "alloc-stop"

    async def replaced() -> bool:
        old = await _get(http, f"/v1/allocation/{first['ID']}")
        running = await _running(http, "api")
        return old["ClientStatus"] == "complete" and len(running) == 2 and first["ID"] not in {
            a["ID"] for a in running}

    await poll(replaced, what="the stopped allocation replaced")
    old = await _get(http, f"/v1/allocation/{first['ID']}")
    assert old["DesiredDescription"] == "alloc is being migrated"
    assert old["NextAllocation"]
    replacement = await _get(http, f"/v1/allocation/{old['NextAllocation']}")
    assert replacement["PreviousAllocation"] == first["ID"]


async def test_drain_migrates_allocations_and_completes(
    sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("api", count=3, distinct=False)}) as response:
        assert response.status == 200
    await poll(lambda: _count_running(http, "api", 3), what="three running")
    node_id = sim.cluster.nodes.resolve("pi1")
    async with http.post(f"/v1/node/{node_id}/drain", json={"DrainSpec": {"Deadline": 0}}) as response:
        assert response.status == 200, await response.text()
        drained = await response.json()
    node = await _get(http, f"/v1/node/{node_id}")
    assert node["SchedulingEligibility"] == "ineligible"

    async def drain_done() -> bool:
        current = await _get(http, f"/v1/node/{node_id}")
        running = await _running(http, "api")
        return (current["DrainStrategy"] is None and current["LastDrain"]["Status"] == "complete"
                and len(running) == 3 and all(a["NodeID"] != node_id for a in running))

    await poll(drain_done, what="drain complete with allocations moved off the node")
    assert drained["EvalIDs"]
    node = await _get(http, f"/v1/node/{node_id}")
    messages = [event["Message"] for event in node["Events"]]
    assert "Node drain strategy set" in messages
    assert "Node drain complete" in messages
    async with http.post(f"/v1/node/{node_id}/eligibility", json={"Eligibility": "eligible"}) as response:
        assert response.status == 200
    node = await _get(http, f"/v1/node/{node_id}")
    assert node["SchedulingEligibility"] == "eligible"


async def _count_running(http: aiohttp.ClientSession, job_id: str, count: int) -> bool:
    return len(await _running(http, job_id)) == count


async def test_failed_tasks_are_rescheduled(
    sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("flaky", count=1, distinct=False)}) as response:
        assert response.status == 200
    await poll(lambda: _count_running(http, "flaky", 1), what="one running")
    async with http.post("/v1/sim/job/flaky/fail") as response:
        assert response.status == 200
        assert (await response.json())["Failed"] == 1

    async def rescheduled() -> dict[str, Any] | None:
        allocs = await _get(http, "/v1/job/flaky/allocations")
        failed = [a for a in allocs if a["ClientStatus"] == "failed"]
        running = await _running(http, "flaky")
        if len(failed) == 1 and len(running) == 1:
            return running[0]
        return None

    replacement = await poll(rescheduled, what="a running replacement of the failed allocation")
    full = await _get(http, f"/v1/allocation/{replacement['ID']}")
    assert full["RescheduleTracker"]["Events"][0]["PrevAllocID"]
    failed = await _get(http, f"/v1/allocation/{full['PreviousAllocation']}")
    assert failed["ClientDescription"] == "Failed tasks"
    assert failed["TaskStates"]["server"]["Failed"] is True


async def test_disconnect_window_then_down_and_reconnect(
    sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll, make_job: Callable[..., dict[str, Any]]
) -> None:
    job = make_job("edge", count=3)
    job["TaskGroups"][0]["Disconnect"] = {"LostAfter": 400_000_000, "Replace": False}  # 0.4 s
    async with http.put("/v1/jobs", json={"Job": job}) as response:
        assert response.status == 200
    await poll(lambda: _count_running(http, "edge", 3), what="three running")
    sim.cluster.unplug("pi1")
    await poll(lambda: _is(http, "pi1", "disconnected"), what="pi1 disconnected")
    allocs = await _get(http, "/v1/job/edge/allocations")
    assert [a["ClientStatus"] for a in allocs if a["NodeName"] == "pi1"] == ["unknown"]
    await poll(lambda: _is(http, "pi1", "down"), what="pi1 down once the disconnect window passed")
    sim.cluster.plug("pi1")
    await poll(lambda: _is(http, "pi1", "ready"), what="pi1 ready")
    await poll(lambda: _count_running(http, "edge", 3), what="three running after pi1 returned")
