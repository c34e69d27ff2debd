"""Two operator replicas as real processes elect a leader on a simulator process; SIGKILL the leader and the standby
leads within TTL + LockDelay + 5 s, and the simulator's write log never shows the two writing at once.

Each replica is a minimal process of its own (the program below): it runs `LeaderElector` with Nomad's smallest TTL
(10 s: the simulator process keeps Nomad's timing) and writes its own Variable every 200 ms, through the elector's
write guard, whether it leads or not. One failover takes about 14 s, so the test runs it once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_processes import request_json, simulator_process, start_in_session, stop, wait_for

TTL_S = 10.0
LOCK_DELAY_S = 3.0
START_DEADLINE_S = 30.0
FAILOVER_DEADLINE_S = TTL_S + LOCK_DELAY_S + 5.0
WRITES_PREFIX = "/v1/var/test/writes/"

REPLICA_PROGRAM = """
import asyncio, contextlib, signal, sys
from nomad_operator.nomad import NomadClient, NomadError, NomadSettings
from nomad_operator.runtime.leader import LeaderElector
from nomad_operator.runtime.leader_timing import LeaderElectionConfig

async def main(name: str, ttl: float, lock_delay: float) -> None:
    async with NomadClient(NomadSettings.from_env()) as client:
        elector = LeaderElector(client, config=LeaderElectionConfig(ttl=ttl, lock_delay=lock_delay),
                                identity=f"replica-{name}")
        client.write_guard = elector
        elector.add_listener(lambda leading: print("LEADING" if leading else "STANDBY", flush=True))
        election = asyncio.create_task(elector.run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, election.cancel)  # resign: release the lock
        number = 0
        while not election.done():
            number += 1
            with contextlib.suppress(NomadError):
                await client.put_variable(f"test/writes/{name}", {"n": str(number)})
            await asyncio.sleep(0.2)
        with contextlib.suppress(asyncio.CancelledError):
            await election

asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
"""


def _stop(process: subprocess.Popen[str]) -> None:
    stop(process, wait_s=10)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    with simulator_process("--nodes", "1", log=tmp_path / "sim.log") as address:
        yield address


def _writes(address: str) -> list[tuple[float, str]]:
    log = request_json(address, "/v1/sim/stats")["write_log"]
    return [(e["time"], e["path"][len(WRITES_PREFIX) :]) for e in log if e["path"].startswith(WRITES_PREFIX)]


def test_sigkill_of_the_leader_hands_over_within_ttl_plus_lock_delay_plus_5s(simulator: str) -> None:
    environment = {**os.environ, "NOMAD_ADDR": simulator}
    replicas = {
        name: start_in_session(
            [sys.executable, "-c", REPLICA_PROGRAM, name, str(TTL_S), str(LOCK_DELAY_S)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    }
    try:
        writers = wait_for(lambda: {w for _, w in _writes(simulator)}, "a leader to write", deadline_s=START_DEADLINE_S)
        assert len(writers) == 1
        (leader,) = writers
        (standby,) = set(replicas) - {leader}
        wait_for(lambda: len(_writes(simulator)) >= 5, "the leader to keep writing", deadline_s=START_DEADLINE_S)
        replicas[leader].kill()  # SIGKILL: no release, the lock must run out
        replicas[leader].wait()
        wait_for(
            lambda: [t for t, w in _writes(simulator) if w == standby],
            "the standby to lead and write",
            deadline_s=FAILOVER_DEADLINE_S,
        )
        wait_for(lambda: len([w for _, w in _writes(simulator) if w == standby]) >= 3, "more", deadline_s=5.0)
    finally:
        for process in replicas.values():
            _stop(process)
    writes = _writes(simulator)
    order = [writer for _, writer in writes]
    switch = order.index(standby)
    assert set(order[:switch]) == {leader}
    assert set(order[switch:]) == {standby}  # never both: the killed leader wrote nothing after the standby began
    output = replicas[standby].stdout
    assert output is not None
    assert output.read().split() == ["LEADING", "STANDBY"]  # led, then resigned on SIGTERM
