"""Variables over HTTP: CAS create/update/conflict, delete with 204, and locks (acquire, renew, release, conflict,
expiry and lock delay)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from nomad_operator.sim.server import start_simulator

Poll = Callable[..., Awaitable[Any]]


async def test_cas_create_update_conflict_and_delete(http: aiohttp.ClientSession) -> None:
    async with http.put("/v1/var/app/config?cas=0", json={"Items": {"a": "1"}}) as response:
        assert response.status == 200
        created = await response.json()
        assert response.headers["X-Nomad-Index"] == str(created["ModifyIndex"])
    assert created["Items"] == {"a": "1"}
    assert created["Path"] == "app/config"
    async with http.put("/v1/var/app/config?cas=0", json={"Items": {"a": "2"}}) as response:
        assert response.status == 409
        conflict = await response.json()
    assert conflict["ModifyIndex"] == created["ModifyIndex"]
    assert conflict["Items"] == {"a": "1"}
    async with http.put(f"/v1/var/app/config?cas={created['ModifyIndex']}", json={"Items": {"a": "2"}}) as response:
        assert response.status == 200
        updated = await response.json()
    assert updated["ModifyIndex"] > created["ModifyIndex"]
    assert updated["CreateIndex"] == created["CreateIndex"]
    async with http.put(f"/v1/var/app/config?cas={created['ModifyIndex']}", json={"Items": {"a": "3"}}) as response:
        assert response.status == 409
    async with http.get("/v1/vars", params={"prefix": "app/"}) as response:
        listing = await response.json()
    assert [item["Path"] for item in listing] == ["app/config"]
    assert "Items" not in listing[0]
    async with http.delete(f"/v1/var/app/config?cas={created['ModifyIndex']}") as response:
        assert response.status == 409
    async with http.delete(f"/v1/var/app/config?cas={updated['ModifyIndex']}") as response:
        assert response.status == 204
        assert await response.read() == b""
    async with http.get("/v1/var/app/config") as response:
        assert response.status == 404
        assert await response.text() == "variable not found"


async def test_blocking_read_returns_on_change(sim: Any, http: aiohttp.ClientSession, poll: Poll) -> None:
    async with http.put("/v1/var/watch", json={"Items": {"v": "1"}}) as response:
        first = await response.json()

    async def change_later() -> None:
        async with http.put("/v1/var/watch", json={"Items": {"v": "2"}}) as response:
            assert response.status == 200

    task = asyncio.create_task(change_later())
    async with http.get("/v1/var/watch", params={"index": str(first["ModifyIndex"]), "wait": "10s"}) as response:
        body = await response.json()
    await task
    assert body["Items"] == {"v": "2"}
    assert int(response.headers["X-Nomad-Index"]) > first["ModifyIndex"]


@pytest.mark.parametrize(("query", "message"), [
    ("cas=abc", 'can not parse cas: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("lock-acquire&lock-release", "multiple lock operations"),
    ("lock-acquire&cas=1", "CAS can't be used with lock operations"),
])
async def test_bad_variable_requests(http: aiohttp.ClientSession, query: str, message: str) -> None:
    async with http.put(f"/v1/var/x?{query}", json={"Items": {"a": "b"}}) as response:
        assert response.status == 400
        assert await response.text() == message


async def test_missing_items_and_wrong_method(http: aiohttp.ClientSession) -> None:
    async with http.put("/v1/var/x", json={"Items": {}}) as response:
        assert response.status == 400
        assert await response.text() == "variable missing required Items object"
    async with http.patch("/v1/var/x", json={"Items": {"a": "b"}}) as response:
        assert response.status == 400
        assert await response.text() == "Invalid method"
    async with http.get("/v1/vars") as response:
        assert await response.json() == []


async def test_lock_acquire_renew_release_and_conflicts(http: aiohttp.ClientSession) -> None:
    lock = {"Lock": {"TTL": "15s", "LockDelay": "15s"}}
    async with http.put("/v1/var/leader?lock-acquire", json=lock) as response:
        assert response.status == 200, await response.text()
        held = await response.json()
    lock_id = held["Lock"]["ID"]
    assert held["Lock"]["TTL"] == "15s"
    async with http.put("/v1/var/leader?lock-acquire", json=lock) as response:
        assert response.status == 409
    async with http.put("/v1/var/leader?lock-renew", json={"Lock": {"ID": "someone-else"}}) as response:
        assert response.status == 409
    async with http.put("/v1/var/leader", json={"Items": {"x": "y"}}) as response:
        assert response.status == 409
    async with http.put("/v1/var/leader?lock-renew", json={"Lock": {"ID": lock_id}}) as response:
        assert response.status == 200
        renewed = await response.json()
    assert "Items" not in renewed
    assert renewed["Lock"]["ID"] == lock_id
    async with http.put("/v1/var/leader?lock-release", json={"Lock": {"ID": lock_id}}) as response:
        assert response.status == 200
        released = await response.json()
    assert "Lock" not in released
    async with http.put("/v1/var/leader?lock-renew", json={"Lock": {"ID": lock_id}}) as response:
        assert response.status == 409
    async with http.put("/v1/var/leader?lock-acquire", json=lock) as response:
        assert response.status == 200


@pytest.mark.parametrize("ttl", ["5s", "25h", "-1s"])
async def test_lock_ttl_out_of_range(http: aiohttp.ClientSession, ttl: str) -> None:
    async with http.put("/v1/var/l?lock-acquire", json={"Lock": {"TTL": ttl}}) as response:
        assert response.status == 400


async def test_lock_expiry_then_lock_delay(make_config: Callable[..., Any], poll: Poll) -> None:
    # TTL 10s and LockDelay 60s, run 50x faster: the lock expires after 0.2 s and stays untakeable for 1.2 s.
    async with start_simulator(make_config(lock_time_scale=0.02)) as sim, aiohttp.ClientSession(
        base_url=sim.address
    ) as http:
        async with http.put("/v1/var/lease?lock-acquire", json={"Lock": {"TTL": "10s", "LockDelay": "60s"}}) as r:
            assert r.status == 200

        async def expired() -> bool:
            async with http.get("/v1/var/lease") as response:
                return "Lock" not in await response.json()

        await poll(expired, what="the lock to expire")
        async with http.put("/v1/var/lease?lock-acquire", json={"Lock": {"TTL": "10s"}}) as response:
            assert response.status == 409  # within the lock delay

        async def acquired() -> bool:
            async with http.put("/v1/var/lease?lock-acquire", json={"Lock": {"TTL": "10s"}}) as response:
                return response.status == 200

        await poll(acquired, what="the lock delay to pass")
