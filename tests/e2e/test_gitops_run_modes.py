"""`nomad-operator run` as a process in its two modes: resource mode driven by `apply`/`get`/`delete` as a person
uses them, and single-source mode taking a thousand signed webhooks in one second for one push.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from e2e_processes import RunProcesses, cli_async, commit_files, empty_repository

from nomad_operator.nomad import NomadClient, NomadSettings, NotFound
from nomad_operator.server.webhook_providers import Provider, signed_headers
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

WAIT = 60.0
SECRET = b"burst-secret"
WEBHOOKS = 1000
CONCURRENCY = 50
JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "%(image)s" }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return empty_repository(tmp_path / "repo")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(fast_sim_config()) as running:
        await wait_for_nodes_ready(running)
        yield running


@pytest.fixture
async def run_process(sim: RunningSimulator, tmp_path: Path) -> AsyncIterator[Callable[..., str]]:
    """Starts `run` processes (their logs in the test's tmp_path, kept by pytest for a failure's post-mortem)."""
    started = RunProcesses(sim.address, tmp_path)

    def start(*args: str, env: dict[str, str]) -> str:
        return started.start(settings=env, args=args).address

    try:
        yield start
    finally:
        await started.stop_all_off_loop()


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    return await cli_async(*args, env=env, deadline_s=WAIT)


async def test_resource_mode_apply_get_delete(
    sim: RunningSimulator, repository: Path, run_process: Any, project_root: Path, tmp_path: Path
) -> None:
    revision = commit_files(repository, {"jobs/app.nomad": JOB % {"id": "app", "image": "app:1"}})
    crds = str(project_root / "crds")
    env = {"NOMAD_ADDR": sim.address, "NOMAD_OPERATOR_CRDS": crds}
    run_process(env={"NOMAD_OPERATOR_CRDS": crds})
    manifest = tmp_path / "gitsource.yaml"
    manifest.write_text(
        "apiVersion: nomad-operator.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: cluster\n"
        f"spec:\n  url: {repository.as_uri()}\n  paths: ['jobs/*.nomad']\n  interval: 1h\n"
    )
    code, out, err = await cli("apply", "-f", str(manifest), env=env)
    assert code == 0, err
    assert "created" in out

    async def ready() -> dict[str, Any] | None:
        code, out, _ = await cli("get", "gitsource", "cluster", "-o", "json", env=env)
        if code != 0:
            return None
        status = json.loads(out).get("status") or {}
        condition = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return status if condition.get("status") == "True" else None

    status = await eventually(ready, timeout=WAIT, interval=0.3, what="the GitSource Ready")
    assert status["lastAppliedRevision"] == revision
    code, out, _ = await cli("get", "gitsource", env=env)
    assert code == 0
    assert revision in out

    code, out, err = await cli("delete", "gitsource", "cluster", env=env)
    assert code == 0, err

    async def gone() -> bool:
        code, _, err = await cli("get", "gitsource", "cluster", env=env)
        return code != 0 and "not found" in err

    await eventually(gone, timeout=WAIT, interval=0.3, what="the GitSource gone once its loop stopped")
    async with NomadClient(NomadSettings(address=sim.address)) as nomad:
        assert (await nomad.read_job("app")).value["Stop"] is False  # prune is off: the job stays


async def test_a_thousand_signed_webhooks_in_a_second_cause_one_or_two_fetches(
    sim: RunningSimulator, repository: Path, run_process: Any, tmp_path: Path
) -> None:
    commit_files(repository, {"jobs/web.nomad": JOB % {"id": "web", "image": "app:1"}})
    secret_file = tmp_path / "hook-secret"
    secret_file.write_bytes(SECRET + b"\n")
    address = run_process(env={"NOMAD_OPERATOR_REPO": repository.as_uri(), "NOMAD_OPERATOR_INTERVAL": "1h",
                               "NOMAD_OPERATOR_WEBHOOK_SECRET_FILE": str(secret_file)})  # fmt: skip

    async with aiohttp.ClientSession() as http, NomadClient(NomadSettings(address=sim.address)) as nomad:

        async def replica() -> dict[str, Any] | None:
            try:
                async with http.get(f"{address}/status") as answer:
                    documents = await answer.json()
            except aiohttp.ClientError:
                return None
            document = documents.get("default/default") or {}
            applied = document.get("lastAppliedRevision")
            return {**document["replica"], "applied": applied} if applied else None

        before = await eventually(replica, timeout=WAIT, what="the first sync")
        pushed = commit_files(repository, {"jobs/web.nomad": JOB % {"id": "web", "image": "app:2"}})
        body = orjson.dumps({"ref": "refs/heads/main", "after": pushed})
        headers = signed_headers(Provider.GITHUB, SECRET, body)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def send() -> int:
            async with limit, http.post(f"{address}/hooks/default", data=body, headers=headers) as answer:
                return answer.status

        statuses = await asyncio.gather(*(send() for _ in range(WEBHOOKS)))
        assert set(statuses) <= {202, 429}, sorted(set(statuses))
        assert statuses.count(202) >= 1

        async def image() -> bool:
            try:
                job = (await nomad.read_job("web")).value
            except NotFound:
                return False
            return bool(job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "app:2")

        await eventually(image, timeout=WAIT, what="the push applied")
        after = await eventually(lambda: _applied(replica, pushed), timeout=WAIT, what="the status at the push")
        assert 1 <= after["fetches"] - before["fetches"] <= 2, (before, after)  # the push fetched once, twice at most
        # Every accepted webhook asked for a fetch; the trigger coalesced them into a few cheap remote checks.
        assert after["remoteChecks"] - before["remoteChecks"] <= statuses.count(202) // 4, (before, after)


async def _applied(replica: Any, revision: str) -> dict[str, Any] | None:
    state = await replica()
    return state if state is not None and state["applied"] == revision else None
