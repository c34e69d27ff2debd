"""Issue 5 at the process level: Nomad answers 500 to a third of the job writes, and the sync still converges with
nothing lost and nothing done twice.

A `nomad-operator sim` process is the cluster, with a fault injected before the operator starts: HTTP 500 at rate
0.33 (and, in a second run, 0.66) on every PUT under `/v1/job` (registers, and the parse and plan calls that Nomad's
API also spells as PUT). One `nomad-operator run` process reconciles the project's real `jobs/` from a local git
repository. The hazards: a register that failed being treated as done (a job missing), a register sent again after it
had been applied (a duplicate write), and a sync that never settles because some write always fails. Nomad keeps a
job's version when the same spec is registered again, so versions alone cannot show a duplicate; every applied
register does leave a `job-register` evaluation, so those are counted per job. The test also checks the operator's
inventory against the live jobs, and that cycles after convergence attempt no register at all while the fault is on.
The simulator's fault injection refuses a request before applying it; a 500 that arrives after the write was applied
(a lost answer) is not modelled by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from nomad_operator.testing import eventually

WAIT_S = 45.0
POLL_S = 0.1
NOT_YET = (aiohttp.ClientError, TimeoutError)
DEPLOYMENT_TIME_SCALE = "0.02"
FAULT = {"status": 500, "path": "^/v1/job", "method": "PUT"}
FAULT_RATES = (0.33, 0.66)
"""A third of the writes, as the issue says; and two thirds, where a request often fails twice or more in a row."""
SYNC_INTERVAL = "1s"
"""The operator polls the repository this often, so a commit is seen without a webhook."""
JOBS = ("consul", "fabio", "nomad-operator", "whoami")
OLD_IMAGE = 'default     = "docker.io/traefik/whoami:v1.10.4"'
NEW_IMAGE = 'default     = "docker.io/traefik/whoami:v1.11.0"'
JOB_WRITES = ("PUT /v1/jobs", "POST /v1/jobs", "PUT /v1/job/{job_id}", "POST /v1/job/{job_id}")
"""The simulator's routes that register a job (Nomad accepts both)."""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of the process's group: a `run` that had to be killed leaves its jobspec pool behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait (SIGKILL after 20 s), then clear the process's group; every process here leads its own."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _kill_group(process)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def simulator() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "nomad_operator", "sim", "--nodes", "3", "--arch", "arm64", "--listen", "127.0.0.1:0",
         "--deployment-time-scale", DEPLOYMENT_TIME_SCALE],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert "listening on" in line, line
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        _stop(process)


@pytest.fixture
def repository(tmp_path: Path, project_root: Path) -> Path:
    repo = tmp_path / "cluster"
    shutil.copytree(project_root / "jobs", repo / "jobs")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "cluster jobs")
    return repo


def _spawn_operator(simulator: str, repository: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    listen = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "NOMAD_ADDR": simulator, "NOMAD_OPERATOR_REPO": repository.as_uri(),
           "NOMAD_OPERATOR_PATH": "jobs/*.nomad", "NOMAD_OPERATOR_LISTEN": listen,
           "NOMAD_OPERATOR_INTERVAL": SYNC_INTERVAL}  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "nomad_operator", "run"], env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return process, f"http://{listen}"


async def _request(http: aiohttp.ClientSession, url: str, *, method: str = "GET", body: Any = None) -> Any:
    async with http.request(method, url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as answer:
        answer.raise_for_status()
        return json.loads(await answer.text())


@pytest.fixture(params=FAULT_RATES, ids=lambda rate: f"rate-{rate}")
async def faulty_cluster(simulator: str, request: pytest.FixtureRequest) -> str:
    """The simulator with the fault on; the fault's own API confirms it took it as given."""
    fault = {**FAULT, "rate": request.param}
    async with aiohttp.ClientSession() as http:
        answer = await _request(http, f"{simulator}/v1/sim/faults", method="POST", body=fault)
    assert answer["Faults"] == [{**fault, "latency_ms": 0.0}]
    return simulator


@pytest.fixture
async def operator(faulty_cluster: str, repository: Path, tmp_path: Path) -> AsyncIterator[str]:
    """One `run` process (its log in tmp_path, kept by pytest for a failure's post-mortem), stopped even on failure."""
    process, address = _spawn_operator(faulty_cluster, repository, tmp_path / "operator.log")
    try:
        yield address
    finally:
        await asyncio.to_thread(_stop, process)


async def _until(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    return await eventually(check, timeout=WAIT_S, interval=POLL_S, what=what, ignore=NOT_YET)


async def _status(http: aiohttp.ClientSession, operator: str) -> dict[str, Any]:
    """The source's status document; empty until its first cycle has ended."""
    documents = await _request(http, f"{operator}/status")
    document: dict[str, Any] = documents.get("default/default") or {}
    return document


async def _synced_at(http: aiohttp.ClientSession, operator: str, revision: str) -> dict[str, Any] | None:
    """The status once it says Synced at `revision` with every job of jobs/ in sync."""
    status = await _status(http, operator)
    jobs = {job["id"]: job["sync"] for job in status.get("jobs") or []}
    in_sync = jobs == dict.fromkeys(JOBS, "Synced")
    return status if in_sync and status["phase"] == "Synced" and status["lastAppliedRevision"] == revision else None


async def _versions(http: aiohttp.ClientSession, cluster: str, job: str) -> list[int]:
    answer = await _request(http, f"{cluster}/v1/job/{job}/versions")
    return sorted((version["Version"] for version in answer["Versions"]), reverse=True)


async def _register_attempts(http: aiohttp.ClientSession, cluster: str) -> int:
    """Register requests that reached the simulator, counted before the fault decides (refused ones included)."""
    writes = (await _request(http, f"{cluster}/v1/sim/stats"))["writes"]
    return sum(count for route, count in writes.items() if route in JOB_WRITES)


async def _registers_applied(http: aiohttp.ClientSession, cluster: str, job: str) -> int:
    """Registers of `job` that Nomad applied: each one, even of an unchanged spec, creates a job-register evaluation."""
    evaluations = await _request(http, f"{cluster}/v1/job/{job}/evaluations")
    return sum(1 for evaluation in evaluations if evaluation["TriggeredBy"] == "job-register")


async def _inventory_mismatches(http: aiohttp.ClientSession, cluster: str, operator: str) -> list[str]:
    """Jobs whose live state differs from what the operator's inventory says it applied (empty: nothing lost)."""
    status = await _status(http, operator)
    inventory = {entry["id"]: entry for entry in status.get("inventory") or []}
    wrong = []
    for job in JOBS:
        live = await _request(http, f"{cluster}/v1/job/{job}")
        listed = inventory.get(job)
        if listed is None or live["Stop"] or live["Version"] != listed["version"]:
            wrong.append(f"{job}: live version {live['Version']} stop={live['Stop']}, inventory {listed}")
    return wrong


async def test_a_third_of_job_writes_failing_still_converges_with_one_register_per_spec(
    faulty_cluster: str, operator: str, repository: Path
) -> None:
    first = _git(repository, "rev-parse", "HEAD")
    async with aiohttp.ClientSession() as http:
        await _until(lambda: _synced_at(http, operator, first), "the first sync to converge to Synced")
        for job in JOBS:
            assert await _versions(http, faulty_cluster, job) == [0], job
            assert await _registers_applied(http, faulty_cluster, job) == 1, job
        # The fault did bite: more registers reached Nomad than the one per job that it applied (the simulator draws
        # faults from a seeded RNG, so this holds run after run).
        assert await _register_attempts(http, faulty_cluster) > len(JOBS)

        whoami = repository / "jobs" / "whoami.nomad"
        text = whoami.read_text()
        assert OLD_IMAGE in text
        whoami.write_text(text.replace(OLD_IMAGE, NEW_IMAGE))
        _git(repository, "commit", "-qam", "whoami v1.11.0")
        second = _git(repository, "rev-parse", "HEAD")

        status = await _until(lambda: _synced_at(http, operator, second), "the image change to converge to Synced")
        assert await _versions(http, faulty_cluster, "whoami") == [1, 0]
        assert await _registers_applied(http, faulty_cluster, "whoami") == 2
        live = await _request(http, f"{faulty_cluster}/v1/job/whoami")
        assert live["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "docker.io/traefik/whoami:v1.11.0"
        for job in JOBS:
            if job != "whoami":
                assert await _versions(http, faulty_cluster, job) == [0], job
                assert await _registers_applied(http, faulty_cluster, job) == 1, job

        # Converged means quiet: two more polling cycles, the fault still on, and not one register is attempted.
        attempts = await _register_attempts(http, faulty_cluster)
        cycles = status["replica"]["cycles"]

        async def two_more_cycles() -> dict[str, Any] | None:
            later = await _status(http, operator)
            return later if later and later["replica"]["cycles"] >= cycles + 2 else None

        later = await _until(two_more_cycles, "two more sync cycles")
        assert later["phase"] == "Synced"
        assert await _register_attempts(http, faulty_cluster) == attempts
        assert await _versions(http, faulty_cluster, "whoami") == [1, 0]
        assert await _inventory_mismatches(http, faulty_cluster, operator) == []
