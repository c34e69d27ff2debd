"""Leader failover time: SIGKILL the leading replica, and time until the standby's first write reaches Nomad.

Runs a simulator process (Nomad's real lock timing) and two replica processes, each running `LeaderElector` and
writing its own Variable every 100 ms through the elector's write guard. Each run kills the leader with SIGKILL (no
release: the lock must run out), reads the simulator's write log for the standby's first write, then restarts the
killed replica as the new standby. Printed: each run, min / mean / max, and the ratio against the theoretical
baseline measured in the same terms, TTL + LockDelay (the lock's life after a renew just before the kill, plus the
delay Nomad imposes). A run can beat the baseline: the leader dies part-way through its renew period.

    .venv/bin/python bench/bench_failover.py [--runs 3] [--ttl 10] [--lock-delay 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any

WRITES_PREFIX = "/v1/var/bench/writes/"
REPLICA_PROGRAM = """
import asyncio, contextlib, signal, sys
from nomad_operator.nomad import NomadClient, NomadError, NomadSettings
from nomad_operator.runtime.leader import LeaderElector
from nomad_operator.runtime.leader_timing import LeaderElectionConfig

async def main(name: str, ttl: float, lock_delay: float) -> None:
    async with NomadClient(NomadSettings.from_env()) as client:
        elector = LeaderElector(client, config=LeaderElectionConfig(ttl=ttl, lock_delay=lock_delay))
        client.write_guard = elector
        election = asyncio.create_task(elector.run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, election.cancel)
        number = 0
        while not election.done():
            number += 1
            with contextlib.suppress(NomadError):
                await client.put_variable(f"bench/writes/{name}", {"n": str(number)})
            await asyncio.sleep(0.1)
        with contextlib.suppress(asyncio.CancelledError):
            await election

asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
"""


def get(address: str, path: str) -> Any:
    with urllib.request.urlopen(address + path, timeout=5) as response:
        return json.loads(response.read())


def writes(address: str) -> list[tuple[float, str]]:
    log = get(address, "/v1/sim/stats")["write_log"]
    return [(e["time"], e["path"][len(WRITES_PREFIX) :]) for e in log if e["path"].startswith(WRITES_PREFIX)]


def writers_after(address: str, seen: int) -> list[str]:
    return [writer for _, writer in writes(address)[seen:]]


def writes_by(address: str, writer: str, after: float) -> list[float]:
    return [moment for moment, who in writes(address) if who == writer and moment > after]


def wait_for(check: Callable[[], Any], *, deadline: float) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise SystemExit("timed out: no leader wrote; is the simulator working?")


def start_replica(name: str, args: argparse.Namespace, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", REPLICA_PROGRAM, name, str(args.ttl), str(args.lock_delay)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=10.0, help="lock TTL in seconds (Nomad allows 10 s and up)")
    parser.add_argument("--lock-delay", type=float, default=3.0)
    args = parser.parse_args()
    deadline = 2 * (args.ttl + args.lock_delay) + 10
    sim = subprocess.Popen(
        [sys.executable, "-m", "nomad_operator", "sim", "--nodes", "1", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    try:
        assert sim.stdout is not None
        address = sim.stdout.readline().split("listening on ", 1)[1].split()[0]
        environment = {**os.environ, "NOMAD_ADDR": address}
        replicas = {name: start_replica(name, args, environment) for name in ("a", "b")}
        durations: list[float] = []
        for run in range(1, args.runs + 1):
            seen = len(writes(address))
            leader: str = wait_for(partial(writers_after, address, seen), deadline=deadline)[-1]
            standby = "b" if leader == "a" else "a"
            time.sleep(args.ttl * 0.3)  # let the leader settle into its renew cycle before the kill
            replicas[leader].kill()
            killed_at = time.time()
            replicas[leader].wait()
            first: float = wait_for(partial(writes_by, address, standby, killed_at), deadline=deadline)[0]
            durations.append(first - killed_at)
            print(f"run {run}: leader {leader} killed; {standby} wrote after {durations[-1]:.2f}s", flush=True)
            replicas[leader] = start_replica(leader, args, environment)
        baseline = args.ttl + args.lock_delay
        mean = statistics.mean(durations)
        print(f"failover (SIGKILL -> new leader writing) over {len(durations)} runs:")
        print(f"  min {min(durations):.2f}s  mean {mean:.2f}s  max {max(durations):.2f}s")
        print(f"  baseline TTL + LockDelay = {baseline:.2f}s; mean / baseline = {mean / baseline:.2f}")
        print(f"  issue target TTL + 5 s = {args.ttl + 5:.2f}s; max / target = {max(durations) / (args.ttl + 5):.2f}")
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=10)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
