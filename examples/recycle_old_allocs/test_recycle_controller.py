"""The example controller, tested the way users test theirs: the toolkit's simulator, operator and waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from recycle_controller import MAX_AGE_META, RecycleOldAllocations, max_age_seconds, plan_recycling

from nomad_operator.nomad import NomadClient
from nomad_operator.runtime import TerminalError
from nomad_operator.testing import eventually, wait_for_allocs

if TYPE_CHECKING:
    from nomad_operator.testing.fixtures import OperatorFactory

pytest_plugins = ["nomad_operator.testing.fixtures"]


def job(max_age: str | None) -> dict[str, object]:
    return {
        "ID": "leaky", "Name": "leaky", "Type": "service", "Datacenters": ["dc1"],
        "Meta": {MAX_AGE_META: max_age} if max_age else {},
        "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [
            {"Name": "t", "Driver": "docker", "Config": {"image": "x"}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}],
    }  # fmt: skip


async def test_allocations_older_than_the_max_age_are_replaced(
    nomad_client: NomadClient, operator_factory: OperatorFactory
) -> None:
    await nomad_client.register_job(job("1s"))
    first = {alloc["ID"] for alloc in await wait_for_allocs(nomad_client, "leaky", count=2)}

    recycler = RecycleOldAllocations(nomad=nomad_client)
    controller = recycler.controller()
    operator = await operator_factory([controller], wait_synced=False)
    recycler.use_cache(operator.cache)

    async def replaced() -> bool:
        running = await wait_for_allocs(nomad_client, "leaky", count=2)
        return not first & {alloc["ID"] for alloc in running}

    await eventually(replaced, what="both original allocations to be replaced")
    assert first <= set(recycler.stopped)


def test_the_decision_is_pure_and_skips_what_is_already_going() -> None:
    now = 1_000.0
    allocs = [
        {"ID": "old", "CreateTime": int(900 * 1e9), "DesiredStatus": "run", "ClientStatus": "running"},
        {"ID": "young", "CreateTime": int(990 * 1e9), "DesiredStatus": "run", "ClientStatus": "running"},
        {"ID": "moving", "CreateTime": int(900 * 1e9), "DesiredStatus": "run", "ClientStatus": "running",
         "DesiredTransition": {"Migrate": True}},
        {"ID": "done", "CreateTime": int(900 * 1e9), "DesiredStatus": "stop", "ClientStatus": "complete"},
    ]  # fmt: skip
    expired, next_due = plan_recycling(allocs, max_age=60, now=now)
    assert expired == ["old"]
    assert next_due == pytest.approx(50)


def test_a_bad_max_age_is_terminal_with_a_clear_reason() -> None:
    assert max_age_seconds({}) is None
    assert max_age_seconds({MAX_AGE_META: "90s"}) == 90
    with pytest.raises(TerminalError, match="not a duration") as bad:
        max_age_seconds({MAX_AGE_META: "soon"})
    assert bad.value.reason == "InvalidMaxAge"
    with pytest.raises(TerminalError, match="must be positive"):
        max_age_seconds({MAX_AGE_META: "0s"})
