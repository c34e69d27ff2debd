"""The fault API: injected errors and latency, clearing them, request statistics with the write log, and the state
dump; each also callable in-process."""

from __future__ import annotations

from typing import Any

import aiohttp

from nomad_operator.sim.server import RunningSimulator


async def test_injected_errors_hit_only_matching_requests(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/sim/faults", json={"status": 503, "rate": 1.0, "path": "^/v1/jobs$",
                                                 "method": "GET"}) as response:
        assert response.status == 200
    async with http.get("/v1/jobs") as response:
        assert response.status == 503
        assert response.headers["Content-Type"].startswith("text/plain")
    async with http.get("/v1/nodes") as response:
        assert response.status == 200
    async with http.put("/v1/jobs", json={}) as response:
        assert response.status == 400  # the fault is for GET only; the handler answered
    async with http.delete("/v1/sim/faults") as response:
        assert (await response.json())["Cleared"] == 1
    async with http.get("/v1/jobs") as response:
        assert response.status == 200


async def test_partial_rate_fails_some_requests(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.cluster.inject_fault({"status": 500, "rate": 0.5, "path": "/v1/regions"})
    statuses = []
    for _ in range(40):
        async with http.get("/v1/regions") as response:
            statuses.append(response.status)
    assert set(statuses) == {200, 500}
    sim.cluster.clear_faults()


async def test_latency_fault_still_answers(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.cluster.inject_fault({"latency_ms": 30, "path": "/v1/status/leader"})
    async with http.get("/v1/sim/faults") as response:
        faults = (await response.json())["Faults"]
    assert faults == [{"path": "/v1/status/leader", "method": None, "status": None, "rate": 1.0, "latency_ms": 30.0}]
    async with http.get("/v1/status/leader") as response:
        assert response.status == 200
        assert await response.json() == "127.0.0.1:4647"


async def test_stats_count_routes_and_log_writes(sim: RunningSimulator, http: aiohttp.ClientSession,
                                                 make_job: Any) -> None:
    sim.cluster.stats.reset()
    async with http.put("/v1/jobs", json={"Job": make_job("w", count=1)},
                        headers={"X-Nomad-Operator-Replica": "replica-a"}) as response:
        assert response.status == 200
    for _ in range(2):
        async with http.get("/v1/jobs") as response:
            assert response.status == 200
    async with http.get("/v1/sim/stats") as response:
        stats = await response.json()
    assert stats["requests"]["GET /v1/jobs"] == 2
    assert stats["writes"] == {"PUT /v1/jobs": 1}
    assert [(entry["method"], entry["path"], entry["writer"]) for entry in stats["write_log"]] == [
        ("PUT", "/v1/jobs", "replica-a")]
    assert stats["write_log"][0]["accessor"] == "acls-disabled"
    async with http.get("/v1/sim/state") as response:
        state = await response.json()
    assert [job["ID"] for job in state["Jobs"]] == ["w"]
    assert len(state["Nodes"]) == 3
