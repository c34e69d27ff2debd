"""Contract: Nomad Variables with check-and-set, and the variable locks behind leader election.

Status writes and custom resources go through `put_variable(cas=...)`; a lost race must come back as `Conflict`
carrying the variable that won, and leader election must see a held lock refuse a second holder.
"""

from __future__ import annotations

import asyncio

import pytest
from contract_target import Target

from nomad_operator.nomad import Conflict, NomadClient, NotFound, lock_id_of


async def test_cas_create_update_conflict_and_delete(target: Target, nomad: NomadClient) -> None:
    path = target.variable_path("status")
    created = await nomad.put_variable(path, {"phase": "new"}, cas=0)
    assert created["Path"] == path
    assert created["Items"] == {"phase": "new"}
    assert created["ModifyIndex"] > 0

    with pytest.raises(Conflict) as exists:
        await nomad.put_variable(path, {"phase": "again"}, cas=0)
    assert exists.value.status == 409
    assert exists.value.current is not None
    assert exists.value.current["ModifyIndex"] == created["ModifyIndex"]
    assert exists.value.current["Path"] == path

    updated = await nomad.put_variable(path, {"phase": "ready"}, cas=created["ModifyIndex"])
    assert updated["ModifyIndex"] > created["ModifyIndex"]
    assert updated["CreateIndex"] == created["CreateIndex"]

    with pytest.raises(Conflict) as stale:
        await nomad.put_variable(path, {"phase": "lost"}, cas=created["ModifyIndex"])
    assert stale.value.current is not None
    assert stale.value.current["ModifyIndex"] == updated["ModifyIndex"]
    assert stale.value.current.get("Items", {"phase": "ready"}) == {"phase": "ready"}  # Items need read permission

    read = await nomad.read_variable(path)
    assert read.value["Items"] == {"phase": "ready"}
    assert read.index == updated["ModifyIndex"]

    with pytest.raises(Conflict):
        await nomad.delete_variable(path, cas=created["ModifyIndex"])
    await nomad.delete_variable(path, cas=updated["ModifyIndex"])  # 204, no body
    with pytest.raises(NotFound) as gone:
        await nomad.read_variable(path)
    assert gone.value.message == "variable not found"


async def test_list_by_prefix_and_blocking_watch(target: Target, nomad: NomadClient) -> None:
    first = target.variable_path("kinds/a")
    second = target.variable_path("kinds/b")
    elsewhere = target.variable_path("other/c")
    await nomad.put_variable(first, {"n": "1"})
    await nomad.put_variable(elsewhere, {"n": "3"})
    listed = await nomad.list_variables(prefix=target.variable_prefix + "kinds/")
    assert [item["Path"] for item in listed.value] == [first]
    assert "Items" not in listed.value[0]  # a list carries metadata only

    waiting = asyncio.create_task(
        nomad.list_variables(prefix=target.variable_prefix + "kinds/", index=listed.index, wait=60.0)
    )
    await asyncio.sleep(0)
    await nomad.put_variable(second, {"n": "2"})
    after = await waiting
    assert after.index > listed.index
    assert [item["Path"] for item in after.value] == [first, second]


async def test_deleting_an_absent_variable_succeeds(target: Target, nomad: NomadClient) -> None:
    await nomad.delete_variable(target.variable_path("never-written"))
    with pytest.raises(NotFound):
        await nomad.read_variable(target.variable_path("never-written"))


async def test_lock_acquire_conflict_renew_release(target: Target, nomad: NomadClient) -> None:
    path = target.variable_path("leader")
    held = await nomad.lock_acquire(path, ttl=15.0, lock_delay=15.0, items={"holder": "replica-a"})
    lock_id = lock_id_of(held)
    assert lock_id
    assert held["Lock"]["TTL"] == "15s"
    assert held["Lock"]["LockDelay"] == "15s"
    assert held["Items"] == {"holder": "replica-a"}

    with pytest.raises(Conflict) as taken:
        await nomad.lock_acquire(path, ttl=15.0, items={"holder": "replica-b"})
    assert taken.value.status == 409
    with pytest.raises(Conflict):  # a plain write may not change a locked variable either
        await nomad.put_variable(path, {"holder": "replica-b"})
    with pytest.raises(Conflict):
        await nomad.lock_renew(path, "00000000-0000-0000-0000-000000000000")

    renewed = await nomad.lock_renew(path, lock_id)
    assert renewed["Path"] == path
    assert "Items" not in renewed  # a renew answers metadata only

    released = await nomad.lock_release(path, lock_id)
    assert lock_id_of(released) is None
    assert (await nomad.read_variable(path)).value["Items"] == {"holder": "replica-a"}
    with pytest.raises(Conflict) as not_held:
        await nomad.lock_renew(path, lock_id)
    assert not_held.value.current is not None
    assert lock_id_of(not_held.value.current) is None
    assert not_held.value.current["ModifyIndex"] == released["ModifyIndex"]

    again = await nomad.lock_acquire(path, ttl=15.0, items={"holder": "replica-b"})  # released: no lock delay
    assert lock_id_of(again) not in (None, lock_id)
    await nomad.lock_release(path, lock_id_of(again) or "")
