"""The testing toolkit itself: waits that explain their failures, and the fixtures on a real simulator."""

from __future__ import annotations

import pytest

from nomad_operator.nomad import NomadClient, NotFound
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import WaitTimeout, eventually, wait_for_allocs, wait_for_job_gone, wait_for_job_status

pytest_plugins = ["nomad_operator.testing.fixtures"]

JOB = {
    "ID": "svc", "Name": "svc", "Type": "service", "Datacenters": ["dc1"],
    "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [
        {"Name": "t", "Driver": "docker", "Config": {"image": "x"}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}],
}  # fmt: skip


async def test_eventually_returns_the_first_truthy_value_of_plain_or_async_checks() -> None:
    calls = []

    def plain() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    async def awaited() -> str:
        return "done"

    assert await eventually(plain) == 3
    assert await eventually(awaited) == "done"


async def test_a_timeout_names_what_was_awaited_and_the_last_value_or_error() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the answer; last value: \[\]"):
        await eventually(lambda: [], timeout=0.05, what="the answer")

    def failing() -> bool:
        raise AssertionError("still 2 of 3")

    with pytest.raises(WaitTimeout, match="failing to be true; last error: AssertionError: still 2 of 3"):
        await eventually(failing, timeout=0.05)


async def test_other_errors_surface_at_once_unless_ignored() -> None:
    def broken() -> bool:
        raise KeyError("typo")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=5)
    with pytest.raises(WaitTimeout, match="last error: KeyError"):
        await eventually(broken, timeout=0.05, ignore=(KeyError,))
    with pytest.raises(ValueError, match="positive"):
        await eventually(lambda: True, timeout=0)


async def test_job_and_allocation_waits_follow_the_simulated_cluster(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    with pytest.raises(WaitTimeout, match="job default/svc to be 'running'; last error: NotFound"):
        await wait_for_job_status(nomad_client, "svc", "running", timeout=0.1)
    await nomad_client.register_job(JOB)
    running = await wait_for_job_status(nomad_client, "svc", "running")
    assert running["ID"] == "svc"
    allocs = await wait_for_allocs(nomad_client, "svc", count=2)
    assert {alloc["ClientStatus"] for alloc in allocs} == {"running"}
    await nomad_client.deregister_job("svc", purge=True)
    await wait_for_job_gone(nomad_client, "svc")
    with pytest.raises(NotFound):
        await nomad_client.read_job("svc")
