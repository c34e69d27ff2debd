"""`nomad-operator plan`, `sync`, `run` and `status` as processes, against the simulator and a real git repository."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from e2e_processes import cli_async, commit_files, git, kill_group, spawn_run

from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

DEADLINE_SECONDS = 60.0
JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "%(image)s" }
      env { API_TOKEN = "%(token)s" }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


def job_text(job_id: str, image: str = "app:1", token: str = "tok-one-1234") -> str:
    return JOB % {"id": job_id, "image": image, "token": token}


class Repo:
    def __init__(self, root: Path) -> None:
        self.bare, self.work = root / "origin.git", root / "work"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def push(self, files: dict[str, str]) -> None:
        commit_files(self.work, files)
        git(self.work, "push", "-q", "origin", "main")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(SimConfig(deployment_time_scale=0.01, task_start=0.01)) as running:
        yield running


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    return await cli_async(*args, env=env, deadline_s=DEADLINE_SECONDS)


async def test_plan_exit_codes_and_redacted_diff_then_sync(sim: RunningSimulator, tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.push({"jobs/web.nomad": job_text("web")})
    env = {"NOMAD_ADDR": sim.address, "NOMAD_OPERATOR_REPO": repo.bare.as_uri()}

    code, out, err = await cli("plan", env=env)
    assert code == 1, err
    assert "+ create default/web (jobs/web.nomad)" in out
    code, out, err = await cli("sync", env=env)
    assert code == 0, out + err
    code, out, err = await cli("plan", env=env)
    assert code == 0, out + err
    assert "0 to create, 0 to update, 0 to stop, 1 unchanged" in out

    repo.push({"jobs/web.nomad": job_text("web", image="app:2", token="tok-two-5678")})
    code, out, err = await cli("plan", env=env)
    assert code == 1, err
    assert "~ update default/web" in out
    assert "Config.image: app:1 => app:2" in out
    assert "Env[API_TOKEN]: <redacted> => <redacted>" in out
    assert "tok-one" not in out
    assert "tok-two" not in out

    repo.push({"jobs/broken.nomad": 'job "broken" {\n'})
    code, out, err = await cli("plan", env=env)
    assert code == 255
    assert "! file jobs/broken.nomad" in out

    code, _, err = await cli("plan", env={"NOMAD_ADDR": sim.address, "NOMAD_OPERATOR_REPO": ""})
    assert code == 255
    assert "NOMAD_OPERATOR_REPO" in err


async def test_run_follows_a_signed_webhook_and_serves_status(sim: RunningSimulator, tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.push({"jobs/web.nomad": job_text("web")})
    secret = tmp_path / "secret"
    secret.write_text("hook-secret\n")
    running = spawn_run(sim.address, settings={"NOMAD_OPERATOR_REPO": repo.bare.as_uri(),
                                               "NOMAD_OPERATOR_WEBHOOK_SECRET_FILE": str(secret),
                                               "NOMAD_OPERATOR_INTERVAL": "1h"})  # fmt: skip
    base = running.address
    try:
        async with NomadClient(NomadSettings(address=sim.address)) as nomad, aiohttp.ClientSession() as http:

            async def image() -> str | None:
                try:
                    job = (await nomad.read_job("web")).value
                except Exception:
                    return None
                return str(job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])

            await until(lambda: image(), "app:1")
            repo.push({"jobs/web.nomad": job_text("web", image="app:2")})
            body = orjson.dumps({"ref": "refs/heads/main", "after": "0" * 40, "commits": []})
            unsigned = await http.post(f"{base}/hooks/default", data=body, headers={"X-GitHub-Event": "push"})
            assert unsigned.status == 401
            signature = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
            headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
            answer = await http.post(f"{base}/hooks/default", data=body, headers=headers)
            assert answer.status == 202
            await until(lambda: image(), "app:2")
            metrics = await (await http.get(f"{base}/metrics")).text()
            assert 'nomad_operator_gitops_webhook_requests_total{result="triggered",source="default"} 1.0' in metrics
            code, out, err = await cli("status", "--server", base, env={})
            assert code == 0, err
            assert "SOURCE default/default" in out
            assert "web" in out
            assert "Synced" in out
    finally:
        running.process.terminate()
        try:
            assert await asyncio.to_thread(running.process.wait, 15) is not None
        finally:
            kill_group(running.process)


async def until(read: object, expected: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = await read()  # type: ignore[operator]
        if value == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected!r}, still {value!r}")
        await asyncio.sleep(0.05)
