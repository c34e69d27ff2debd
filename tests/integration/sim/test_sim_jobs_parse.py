"""`/v1/jobs/parse` on the simulator: Nomad's request and answer shapes, backed by our own converter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import nomad
import pytest

from nomad_operator.sim.server import RunningSimulator

JOB = '''
variable "replicas" {
  type    = number
  default = 1
}

job "web" {
  group "web" {
    count = var.replicas
    task "app" {
      driver = "docker"
      config {
        image = "traefik/whoami:v1.10"
      }
    }
  }
}
'''


async def _parse(http: aiohttp.ClientSession, body: dict[str, object]) -> tuple[int, str, object]:
    async with http.post("/v1/jobs/parse", json=body) as response:
        text = await response.text()
        return response.status, response.headers.get("Content-Type", ""), text


async def test_parse_answers_a_bare_uncanonicalized_job(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/jobs/parse", json={"JobHCL": JOB}) as response:
        assert response.status == 200
        job = await response.json()
    assert "Job" not in job
    assert job["ID"] == "web"
    assert job["TaskGroups"][0]["Count"] == 1
    assert job["Priority"] is None  # not canonicalized: unset fields stay null
    assert list(job) == sorted(job)  # Nomad's encoder sorts struct keys


async def test_parse_canonicalizes_and_takes_variables_as_hcl(http: aiohttp.ClientSession) -> None:
    body = {"JobHCL": JOB, "Canonicalize": True, "Variables": "replicas = 3\n"}
    async with http.post("/v1/jobs/parse", json=body) as response:
        assert response.status == 200
        job = await response.json()
    assert job["TaskGroups"][0]["Count"] == 3
    assert job["Priority"] == 50
    assert job["Region"] == "global"
    assert job["Namespace"] == "default"


@pytest.mark.parametrize(("hcl", "expected"), [
    ('job "x" { bogus = 1 }', "Unsupported argument"),
    ('job "x" {', "Failed to parse job: "),
    ('job "x" { group "g" { task "t" { config { x = file("/etc/passwd") } } } }', "Failed to parse job: "),
])
async def test_parse_errors_are_400_with_nomads_prefix(http: aiohttp.ClientSession, hcl: str, expected: str) -> None:
    status, content_type, text = await _parse(http, {"JobHCL": hcl})
    assert status == 400
    assert content_type.startswith("text/plain")
    assert str(text).startswith("Failed to parse job: ")
    assert expected in str(text)


async def test_parse_of_the_projects_jobs_through_python_nomad(sim: RunningSimulator, project_root: Path) -> None:
    client = nomad.Nomad(host=sim.host, port=sim.port, timeout=10)
    paths = sorted((project_root / "jobs").glob("*.nomad"))
    assert paths
    for path in paths:
        # python-nomad is synchronous: in a thread, so the simulator on this loop can answer it.
        job = await asyncio.to_thread(client.jobs.parse, path.read_text())
        assert job["ID"] == path.stem
        assert job["TaskGroups"], path
