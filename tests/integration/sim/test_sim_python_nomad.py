"""python-nomad as an independent client of the simulator: jobs, allocations, nodes, variables and the event stream
(the stream runs in python-nomad's own thread)."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable
from typing import Any

import nomad
import pytest

from nomad_operator.sim.server import RunningSimulator

Poll = Callable[..., Awaitable[Any]]


@pytest.fixture
def client(sim: RunningSimulator) -> nomad.Nomad:
    return nomad.Nomad(host="127.0.0.1", port=sim.port, timeout=5)


async def test_jobs_allocations_and_nodes(client: nomad.Nomad, poll: Poll,
                                          make_job: Callable[..., dict[str, Any]]) -> None:
    job = make_job("pyjob", count=2, distinct=False)
    registered = await asyncio.to_thread(client.job.register_job, "pyjob", {"Job": job})
    assert registered["EvalID"]
    read = await asyncio.to_thread(client.job.get_job, "pyjob")
    assert read["ID"] == "pyjob"
    assert read["TaskGroups"][0]["Count"] == 2
    jobs = await asyncio.to_thread(client.jobs.get_jobs)
    assert [stub["ID"] for stub in jobs] == ["pyjob"]

    async def two_running() -> list[dict[str, Any]] | None:
        allocs = await asyncio.to_thread(client.job.get_allocations, "pyjob")
        running = [a for a in allocs if a["ClientStatus"] == "running"]
        return running if len(running) == 2 else None

    running = await poll(two_running, what="two running allocations via python-nomad")
    everything = await asyncio.to_thread(client.allocations.get_allocations)
    assert {a["ID"] for a in running} <= {a["ID"] for a in everything}
    one = await asyncio.to_thread(client.allocation.get_allocation, running[0]["ID"])
    assert one["Job"]["ID"] == "pyjob"
    nodes = await asyncio.to_thread(client.nodes.get_nodes)
    assert sorted(node["Name"] for node in nodes) == ["pi1", "pi2", "pi3"]
    node = await asyncio.to_thread(client.node.get_node, nodes[0]["ID"])
    assert node["Attributes"]["cpu.arch"] == "arm64"


async def test_variables(client: nomad.Nomad) -> None:
    written = await asyncio.to_thread(client.variable.create_variable, "py/var", {"Items": {"k": "v"}})
    assert written["Items"] == {"k": "v"}
    read = await asyncio.to_thread(client.variable.get_variable, "py/var")
    assert read["ModifyIndex"] == written["ModifyIndex"]
    listed = await asyncio.to_thread(client.variables.get_variables, prefix="py/")
    assert [item["Path"] for item in listed] == ["py/var"]
    await asyncio.to_thread(client.variable.delete_variable, "py/var")
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        await asyncio.to_thread(client.variable.get_variable, "py/var")


async def test_event_stream_in_a_thread(client: nomad.Nomad, make_job: Callable[..., dict[str, Any]]) -> None:
    thread, exit_event, events = client.event.stream.get_stream(index=1, topic={"Job": "*"}, timeout=5)
    thread.start()
    try:
        await asyncio.to_thread(client.job.register_job, "streamed", {"Job": make_job("streamed", count=1)})

        def first_job_batch() -> dict[str, Any]:
            while True:
                batch: dict[str, Any] = events.get(timeout=10)
                if any(event["Key"] == "streamed" for event in batch["Events"]):
                    return batch

        batch = await asyncio.to_thread(first_job_batch)
    except queue.Empty:
        pytest.fail("python-nomad received no Job event")
    finally:
        exit_event.set()
    event = next(event for event in batch["Events"] if event["Key"] == "streamed")
    assert (event["Topic"], event["Type"]) == ("Job", "JobRegistered")
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
