"""Leader election against the simulator over real HTTP: one leader, hand-over, a leader that cannot renew, the lease.

Replicas run in-process, each with its own Nomad client whose write guard is its elector, and each tries to write its
own Variable (`test/writes/<name>`) every few milliseconds whether it leads or not: only the guard stands between a
replica that lost the lock and the cluster. The simulator's write log then shows who wrote when. The simulator runs
its lock timers 10x faster (`lock_time_scale`), and the electors scale their schedule to match.

To break one replica's link to the lock without breaking the other's, that replica talks to Nomad through a small
HTTP proxy that can fail, delay, or strip the lock operations of its requests (the last makes the simulator behave like
a Nomad before 1.7, which ignores `?lock-acquire` and stores the items as a plain write).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nomad_operator.nomad import NomadClient, NomadError, NomadSettings, NotLeader, RetryPolicy
from nomad_operator.runtime import RuntimeMetrics
from nomad_operator.runtime.leader import LeaderElector
from nomad_operator.runtime.leader_backends import LockUnsupported
from nomad_operator.runtime.leader_timing import ElectionMode, LeaderElectionConfig
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

SCALE = 0.1
CONFIG = LeaderElectionConfig(ttl=10, lock_delay=3, time_scale=SCALE)
WRITE_INTERVAL_S = 0.02
DEADLINE_S = 20.0
WRITES_PREFIX = "/v1/var/test/writes/"


async def eventually(check: Callable[[], Any], *, what: str, deadline: float = DEADLINE_S) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class LockProxy:
    """An HTTP proxy in front of the simulator that can fail, delay or strip one replica's lock and lease calls."""

    def __init__(self, upstream: str, *, paths: tuple[str, ...]) -> None:
        self.upstream = upstream
        self.paths = paths
        self.mode = "pass"  # pass | fail | delay | no-locks
        self.delay_s = 0.0
        self.address = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def _targets(self, request: web.Request) -> bool:
        return request.path in self.paths

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        query = list(request.query.items())
        if self._targets(request):
            if self.mode == "fail":
                return web.Response(status=500, text="proxy: injected failure")
            if self.mode == "delay":
                await asyncio.sleep(self.delay_s)
            if self.mode == "no-locks":
                query = [(key, value) for key, value in query if not key.startswith("lock-")]
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("x-nomad-token", "content-type")}
        async with self._session.request(
            request.method, self.upstream + request.path, params=query, data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower().startswith("x-nomad") or k == "Content-Type"}
            return web.Response(status=answer.status, body=body, headers=out)

    async def __aenter__(self) -> LockProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        assert self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@dataclass
class Replica:
    """One operator replica: a Nomad client guarded by its elector, and a writer that tries to write all the time."""

    name: str
    client: NomadClient
    elector: LeaderElector
    metrics: RuntimeMetrics
    transitions: list[bool] = field(default_factory=list)
    refused: int = 0
    written: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def write_forever(self) -> None:
        number = 0
        while True:
            number += 1
            try:
                await self.client.put_variable(f"test/writes/{self.name}", {"n": str(number)})
                self.written += 1
            except NotLeader:
                self.refused += 1
            except NomadError:
                pass
            await asyncio.sleep(WRITE_INTERVAL_S)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, LockUnsupported):
                await task
        self.tasks.clear()


@contextlib.asynccontextmanager
async def replicas(
    addresses: dict[str, str], *, config: LeaderElectionConfig = CONFIG, write: bool = True
) -> AsyncIterator[dict[str, Replica]]:
    started: dict[str, Replica] = {}
    try:
        for name, address in addresses.items():
            client = NomadClient(NomadSettings(address=address), retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
            await client.__aenter__()
            metrics = RuntimeMetrics()
            elector = LeaderElector(client, config=config, identity=f"replica-{name}", metrics=metrics)
            client.write_guard = elector
            replica = Replica(name, client, elector, metrics)
            elector.add_listener(replica.transitions.append)
            replica.tasks.append(asyncio.create_task(elector.run()))
            if write:
                replica.tasks.append(asyncio.create_task(replica.write_forever()))
            started[name] = replica
        yield started
    finally:
        for replica in started.values():
            await replica.stop()
            await replica.client.close()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(SimConfig(nodes=1, lock_time_scale=SCALE), host="127.0.0.1", port=0) as running:
        yield running


def data_writes(sim: RunningSimulator) -> list[tuple[float, str]]:
    """(time, replica) of every write that reached the simulator, from its write log, in arrival order."""
    log = sim.cluster.stats_snapshot()["write_log"]
    return [(e["time"], e["path"][len(WRITES_PREFIX) :]) for e in log if e["path"].startswith(WRITES_PREFIX)]


def terms_of(writes: list[tuple[float, str]]) -> list[tuple[str, float, float]]:
    """Consecutive runs of one writer: (writer, first write, last write)."""
    runs: list[tuple[str, float, float]] = []
    for moment, writer in writes:
        if runs and runs[-1][0] == writer:
            runs[-1] = (writer, runs[-1][1], moment)
        else:
            runs.append((writer, moment, moment))
    return runs


def leaders(group: dict[str, Replica]) -> list[str]:
    return [name for name, replica in group.items() if replica.elector.is_leader]


async def test_exactly_one_of_three_leads_and_only_it_writes(sim: RunningSimulator) -> None:
    async with replicas({name: sim.address for name in "abc"}) as group:
        await eventually(lambda: leaders(group), what="a leader")
        samples = 0
        # Observe for two TTLs: renews happen, and no second leader may appear at any moment.
        end = time.monotonic() + 2 * CONFIG.ttl_s
        while time.monotonic() < end:
            assert len(leaders(group)) <= 1
            samples += 1
            await asyncio.sleep(0.005)
        (leader,) = leaders(group)
        await eventually(lambda: group[leader].written >= 5, what="the leader to write")
        holder = sim.cluster.store.variables[("default", CONFIG.path)]["Items"]["holder"]
        assert holder == f"replica-{leader}"
        for name in list(group):  # stop the standbys first, so that nobody takes over during the shutdown
            if name != leader:
                await group[name].stop()
    assert samples > 10
    assert {writer for _, writer in data_writes(sim)} == {leader}
    for name, replica in group.items():
        assert replica.transitions[:2] == ([True, False] if name == leader else [])
        assert replica.metrics.is_leader._value.get() == 0  # all resigned on the way out
        if name != leader:
            assert replica.refused > 0
            assert replica.written == 0


async def test_gauge_and_guard_follow_leadership_and_resigning_hands_over_at_once(sim: RunningSimulator) -> None:
    async with replicas({"a": sim.address}, write=False) as first:
        await asyncio.wait_for(first["a"].elector.wait_for_leadership(), DEADLINE_S)
        assert first["a"].metrics.is_leader._value.get() == 1
        async with replicas({"b": sim.address}, write=False) as second:
            b = second["b"]
            await eventually(lambda: b.elector.holder == "replica-a", what="b to see a as the leader")
            assert b.metrics.is_leader._value.get() == 0
            with pytest.raises(NotLeader, match="replica-b is not the leader"):
                await b.client.put_variable("test/writes/b", {"n": "1"})
            await first["a"].stop()  # resign: the lock is released, so b need not wait for TTL + LockDelay
            assert first["a"].elector.is_leader is False
            assert first["a"].metrics.is_leader._value.get() == 0
            await asyncio.wait_for(b.elector.wait_for_leadership(), DEADLINE_S)
            await b.client.put_variable("test/writes/b", {"n": "2"})
            with pytest.raises(NotLeader):
                await first["a"].client.put_variable("test/writes/a", {"n": "1"})
    released = sim.cluster.store.variables[("default", CONFIG.path)]
    assert "Lock" not in released
    assert released["Items"]["holder"] == "replica-b"
    assert [writer for _, writer in data_writes(sim)] == ["b"]


@pytest.mark.parametrize("fault", ["fail", "delay"])
async def test_a_leader_that_cannot_renew_stops_before_its_ttl_and_the_other_takes_over(
    sim: RunningSimulator, fault: str
) -> None:
    lock_request_path = f"/v1/var/{CONFIG.path}"
    async with LockProxy(sim.address, paths=(lock_request_path,)) as proxy, replicas({"a": proxy.address}) as first:
        a = first["a"]
        await asyncio.wait_for(a.elector.wait_for_leadership(), DEADLINE_S)
        async with replicas({"b": sim.address}) as second:
            b = second["b"]
            await eventually(lambda: a.written >= 5, what="a to write as leader")
            proxy.mode, proxy.delay_s = fault, 2 * CONFIG.ttl_s
            cut_at = time.time()
            refused_before = a.refused
            await asyncio.wait_for(a.elector.wait_for_standby(), DEADLINE_S)
            await eventually(lambda: b.elector.is_leader and b.written >= 5, what="b to lead and write")
            await eventually(lambda: a.refused > refused_before + 5, what="a to keep trying and be refused")
    writes = data_writes(sim)
    runs = terms_of(writes)
    assert [writer for writer, _, _ in runs] == ["a", "b"], runs
    (_, _, a_last), (_, b_first, _) = runs
    # a's lock was last renewed before the cut, so it ends on the server by cut + TTL at the latest.
    assert a_last < cut_at + CONFIG.ttl_s
    assert a_last < b_first
    assert a.transitions[:2] == [True, False]


async def test_lease_fallback_keeps_one_writer_when_the_leader_cannot_renew(sim: RunningSimulator) -> None:
    config = LeaderElectionConfig(ttl=10, lock_delay=3, time_scale=SCALE, mode=ElectionMode.LEASE)
    lease_request_path = f"/v1/var/{config.lease_path}"
    async with (
        LockProxy(sim.address, paths=(lease_request_path,)) as proxy,
        replicas({"a": proxy.address}, config=config) as first,
    ):
        a = first["a"]
        await asyncio.wait_for(a.elector.wait_for_leadership(), DEADLINE_S)
        assert a.elector.mode == "lease"
        async with replicas({"b": sim.address}, config=config) as second:
            b = second["b"]
            await eventually(lambda: b.elector.holder == "replica-a", what="b to see a's lease")
            await eventually(lambda: a.written >= 5, what="a to write as leader")
            assert not b.elector.is_leader
            assert b.written == 0
            proxy.mode = "fail"
            cut_at = time.time()
            await asyncio.wait_for(a.elector.wait_for_standby(), DEADLINE_S)
            await eventually(lambda: b.elector.is_leader and b.written >= 5, what="b to take the lease over")
    assert ("default", config.path) not in sim.cluster.store.variables  # no lock was ever taken
    runs = terms_of(data_writes(sim))
    assert [writer for writer, _, _ in runs] == ["a", "b"], runs
    (_, _, a_last), (_, b_first, _) = runs
    assert a_last < cut_at + config.ttl_s
    # b waited for a's TTL plus the margin after it last saw a's lease change, which was before the cut.
    assert b_first - a_last > 2 * config.margin_s
    lease = sim.cluster.store.variables[("default", config.lease_path)]["Items"]
    assert lease["holder"] == ""
    assert lease["ttl_seconds"] == "10"


async def test_auto_mode_falls_back_to_the_lease_on_a_nomad_without_locks(sim: RunningSimulator) -> None:
    lock_request_path = f"/v1/var/{CONFIG.path}"
    async with LockProxy(sim.address, paths=(lock_request_path,)) as proxy:
        proxy.mode = "no-locks"  # what Nomad 1.6 does: ignore ?lock-acquire, store the items, return no lock
        async with replicas({"a": proxy.address, "b": proxy.address}) as group:
            await eventually(lambda: leaders(group), what="a leader on the lease")
            assert {replica.elector.mode for replica in group.values()} == {"lease"}
            (leader,) = leaders(group)
            await eventually(lambda: group[leader].written >= 3, what="the leader to write")
    assert {writer for _, writer in data_writes(sim)} == {leader}
    assert "Lock" not in sim.cluster.store.variables[("default", CONFIG.path)]


async def test_lock_mode_on_a_nomad_without_locks_fails_clearly(sim: RunningSimulator) -> None:
    config = LeaderElectionConfig(ttl=10, time_scale=SCALE, mode=ElectionMode.LOCK)
    async with LockProxy(sim.address, paths=(f"/v1/var/{config.path}",)) as proxy:
        proxy.mode = "no-locks"
        async with NomadClient(NomadSettings(address=proxy.address)) as client:
            elector = LeaderElector(client, config=config)
            with pytest.raises(LockUnsupported, match="no lock ID"):
                await asyncio.wait_for(elector.run(), DEADLINE_S)
            assert not elector.is_leader


async def test_a_leader_that_was_cut_off_leads_again_once_it_reaches_nomad(sim: RunningSimulator) -> None:
    # Alone, a replica whose renews fail stops writing at its deadline; once Nomad answers again it either renews the
    # lock it still holds on the server or, if that expired, is elected again: writes resume through the guard.
    lock_request_path = f"/v1/var/{CONFIG.path}"
    async with (
        LockProxy(sim.address, paths=(lock_request_path,)) as proxy,
        replicas({"a": proxy.address}, write=False) as group,
    ):
        a = group["a"]
        await asyncio.wait_for(a.elector.wait_for_leadership(), DEADLINE_S)
        await a.client.put_variable("test/writes/a", {"n": "1"})
        proxy.mode = "fail"
        await asyncio.wait_for(a.elector.wait_for_standby(), DEADLINE_S)
        with pytest.raises(NotLeader):
            await a.client.put_variable("test/writes/a", {"n": "2"})
        proxy.mode = "pass"
        await asyncio.wait_for(a.elector.wait_for_leadership(), DEADLINE_S)
        await a.client.put_variable("test/writes/a", {"n": "3"})
    assert a.transitions[:3] == [True, False, True]
    assert sim.cluster.store.variables[("default", "test/writes/a")]["Items"] == {"n": "3"}
    assert len(data_writes(sim)) == 2
