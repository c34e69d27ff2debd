"""The event stream over HTTP: framing, heartbeats, Types of a register/plan/client-update sequence, resume
semantics, topic and key filters, and streams cut by the fault API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from nomad_operator.sim.server import RunningSimulator, start_simulator

Poll = Callable[..., Awaitable[Any]]
READ_DEADLINE_S = 10.0


async def _read_until(response: aiohttp.ClientResponse, done: Callable[[list[Any]], bool]) -> list[Any]:
    """Decode NDJSON lines until `done(lines)` holds; heartbeats are kept as {}."""
    lines: list[Any] = []

    async def read() -> None:
        while not done(lines):
            raw = await response.content.readline()
            if not raw:
                return
            lines.append(orjson.loads(raw))

    await asyncio.wait_for(read(), READ_DEADLINE_S)
    return lines


def _events(lines: list[Any]) -> list[dict[str, Any]]:
    return [event for line in lines if line for event in line["Events"]]


async def test_heartbeat_at_connect_and_on_quiet(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/event/stream", params={"topic": "Job:none"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        lines = await _read_until(response, lambda lines: len(lines) >= 2)
    assert lines[:2] == [{}, {}]


async def test_register_sequence_types_keys_and_filter_keys(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: Callable[..., dict[str, Any]]
) -> None:
    start = sim.cluster.store.index + 1
    async with http.get("/v1/event/stream", params=[("index", str(start)), ("topic", "Job"),
                                                     ("topic", "Evaluation"), ("topic", "Allocation")]) as response:
        async with http.put("/v1/jobs", json={"Job": make_job("web", count=1, distinct=False)}) as registered:
            body = await registered.json()

        def has_running(lines: list[Any]) -> bool:
            return any(e["Topic"] == "Allocation" and e["Payload"]["Allocation"].get("ClientStatus") == "running"
                       for e in _events(lines))

        lines = await _read_until(response, has_running)
    data = [line for line in lines if line]
    first, second = data[0], data[1]
    assert first["Index"] == second["Index"] == body["JobModifyIndex"]
    assert [(e["Topic"], e["Type"]) for e in first["Events"]] == [("Job", "JobRegistered")]
    assert [(e["Topic"], e["Type"]) for e in second["Events"]] == [("Evaluation", "JobRegistered")]
    job_event, eval_event = first["Events"][0], second["Events"][0]
    assert job_event["Key"] == "web"
    assert job_event["FilterKeys"] is None
    assert job_event["Payload"]["Job"]["Status"] == "pending"
    assert eval_event["FilterKeys"] == ["web", ""]
    assert eval_event["Payload"]["Evaluation"]["TriggeredBy"] == "job-register"
    assert set(job_event) == {"Topic", "Type", "Key", "Namespace", "FilterKeys", "Index", "Payload"}
    plan = next(line for line in data if any(e["Type"] == "PlanResult" for e in line["Events"]))
    assert {e["Type"] for e in plan["Events"]} == {"PlanResult"}
    placed = next(e for e in plan["Events"] if e["Topic"] == "Allocation")["Payload"]["Allocation"]
    assert placed["ClientStatus"] == "pending"
    assert placed["DesiredStatus"] == "run"
    assert "Job" not in placed
    assert "TaskStates" not in placed
    update = next(line for line in data if any(e["Type"] == "AllocationUpdated" for e in line["Events"]))
    assert {e["Type"] for e in update["Events"]} == {"AllocationUpdated"}
    events = [e for line in data for e in line["Events"]]
    assert any(e["Type"] == "EvaluationUpdated" and e["Payload"]["Evaluation"]["Status"] == "complete"
               for e in events)


async def test_resume_is_inclusive_and_old_index_starts_at_oldest(make_config: Callable[..., Any]) -> None:
    async with start_simulator(make_config(event_buffer_size=5)) as sim, aiohttp.ClientSession(
        base_url=sim.address
    ) as http:
        for number in range(8):
            async with http.put(f"/v1/var/k{number}", json={"Items": {"n": str(number)}}) as response:
                assert response.status == 200
        newest = sim.cluster.store.index

        async def batches(index: int) -> list[int]:
            async with http.get("/v1/event/stream", params={"index": str(index), "topic": "Variable"}) as response:
                lines = await _read_until(response, lambda lines: any(line.get("Index") == newest for line in lines))
            return [line["Index"] for line in lines if line]

        resumed = await batches(newest - 1)
        assert resumed == [newest - 1, newest]  # the batch at the requested index is re-sent
        oldest = await batches(1)
        assert len(oldest) == 5
        assert oldest[-1] == newest
        beyond = await batches(newest + 50)
        assert beyond == [newest]


async def test_topic_key_filter_matches_key_and_filter_keys(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: Callable[..., dict[str, Any]]
) -> None:
    for job_id in ("one", "two"):
        async with http.put("/v1/jobs", json={"Job": make_job(job_id, count=1, distinct=False)}) as response:
            assert response.status == 200
    async with http.get("/v1/event/stream", params=[("index", "1"), ("topic", "Allocation:two"),
                                                     ("topic", "Job:one")]) as response:
        lines = await _read_until(response, lambda lines: sum(
            1 for e in _events(lines) if e["Topic"] == "Allocation") >= 1 and any(
            e["Topic"] == "Job" for e in _events(lines)))
    events = _events(lines)
    assert {e["Payload"]["Allocation"]["JobID"] for e in events if e["Topic"] == "Allocation"} == {"two"}
    assert {e["Key"] for e in events if e["Topic"] == "Job"} == {"one"}
    assert {e["Topic"] for e in events} <= {"Allocation", "Job"}


async def test_namespace_filter_hides_other_namespaces_but_not_nodes(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: Callable[..., dict[str, Any]]
) -> None:
    async with http.put("/v1/jobs", json={"Job": make_job("hidden", count=1, distinct=False,
                                                          Namespace="other")}) as response:
        assert response.status == 200
    async with http.put("/v1/var/marker", json={"Items": {"k": "v"}}) as response:
        marker = (await response.json())["ModifyIndex"]
    async with http.get("/v1/event/stream", params={"index": "1"}) as response:
        lines = await _read_until(response, lambda lines: any(line.get("Index") == marker for line in lines))
    events = _events(lines)
    assert not [e for e in events if e["Namespace"] == "other"]
    assert any(e["Topic"] == "Node" and e["Type"] == "NodeRegistration" for e in events)


@pytest.mark.parametrize("topic", ["Job:a:b", ":x"])
async def test_bad_topic_is_400(http: aiohttp.ClientSession, topic: str) -> None:
    async with http.get("/v1/event/stream", params={"topic": topic}) as response:
        assert response.status == 400
        assert (await response.text()).startswith("Invalid topic query")


async def test_cut_closes_open_streams(sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll) -> None:
    async with http.get("/v1/event/stream", params={"topic": "Job"}) as response:
        await _read_until(response, lambda lines: len(lines) >= 1)
        async with http.post("/v1/sim/events/cut") as cut:
            assert (await cut.json())["Closed"] == 1
        rest = await asyncio.wait_for(response.content.read(), READ_DEADLINE_S)
    assert all(line in (b"", b"{}") for line in rest.split(b"\n"))
    assert sim.cluster.broker.subscriber_count == 0
