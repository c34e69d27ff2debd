"""Resource mode of the assembled operator, in-process: GitSource resources from the ResourceStore, each with its own
loop, status written back with CAS, secrets from Nomad Variables, `requestedAt`, a bad credential, and deletion
through the finalizer (the loop stops, the jobs stay).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from nomad_operator.controllers.assembly import OperatorProcess, ProcessConfig
from nomad_operator.controllers.gitops.resource_sources import FINALIZER
from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.runtime.kinds import load_kinds
from nomad_operator.runtime.resource_store import ResourceConflict, ResourceNotFound, ResourceStore
from nomad_operator.server.webhook_providers import Provider, signed_headers
from nomad_operator.sim.server import RunningSimulator, start_simulator
from nomad_operator.testing import eventually
from nomad_operator.testing.simulated_cluster import fast_sim_config, wait_for_nodes_ready

WAIT = 30.0
SECRET = "resource-secret"
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


def job_text(job_id: str, image: str = "app:1") -> str:
    return JOB % {"id": job_id, "image": image}


def gitsource(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "nomad-operator.io/v1alpha1", "kind": "GitSource",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(fast_sim_config()) as running:
        await wait_for_nodes_ready(running)
        yield running


@pytest.fixture
async def store(nomad: NomadClient, project_root: Path) -> ResourceStore:
    return ResourceStore(nomad, load_kinds(project_root / "crds"))


@pytest.fixture
async def process(sim: RunningSimulator, project_root: Path, tmp_path: Path) -> AsyncIterator[OperatorProcess]:
    config = ProcessConfig(nomad=NomadSettings(address=sim.address), port=0, kinds=load_kinds(project_root / "crds"),
                           workdir=tmp_path / "work", shutdown_timeout=1.0)  # fmt: skip
    running = OperatorProcess(config)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def apply(store: ResourceStore, document: dict[str, Any]) -> None:
    """`apply` as a person's CLI does it: a conflict with the controller's status write is read again and retried."""

    async def attempt() -> bool:
        try:
            await store.apply(document)
        except ResourceConflict:
            return False
        return True

    await eventually(attempt, timeout=WAIT, what=f"apply of {document['metadata']['name']}")


async def status_of(store: ResourceStore, name: str) -> dict[str, Any]:
    return dict((await store.get("GitSource", name)).status)


async def ready_at(store: ResourceStore, name: str, revision: str) -> dict[str, Any] | None:
    status = await status_of(store, name)
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    if ready.get("status") == "True" and status.get("lastAppliedRevision") == revision:
        return status
    return None


async def image_of(nomad: NomadClient, job_id: str) -> str:
    return str((await nomad.read_job(job_id)).value["TaskGroups"][0]["Tasks"][0]["Config"]["image"])


async def test_a_gitsource_resource_is_served_woken_and_deleted_cleanly(
    origin: Any, nomad: NomadClient, store: ResourceStore, process: OperatorProcess
) -> None:
    origin.remove("jobs/web.nomad")
    first = origin.commit_and_push({"jobs/app.nomad": job_text("app")}, "app")
    await nomad.put_variable("secrets/cluster-hook", {"webhook_secret": SECRET})
    await store.apply(gitsource("cluster", {"url": origin.url, "interval": "1h",
                                            "webhookSecret": {"variable": "secrets/cluster-hook"}}))  # fmt: skip

    status = await eventually(lambda: ready_at(store, "cluster", first), timeout=WAIT, what="Ready at the first commit")
    assert [job["id"] for job in status["inventory"]] == ["app"]
    assert status["observedGeneration"] == 1
    assert FINALIZER in (await store.get("GitSource", "cluster")).metadata.finalizers

    second = origin.commit_and_push({"jobs/app.nomad": job_text("app", image="app:2")}, "app 2")
    body = orjson.dumps({"ref": "refs/heads/main", "after": second})
    headers = signed_headers(Provider.GITHUB, SECRET.encode(), body)
    async with aiohttp.ClientSession() as http, http.post(f"{process.server.address}/hooks/cluster", data=body,
                                                          headers=headers) as answer:
        assert answer.status == 202, await answer.text()
    await eventually(lambda: ready_at(store, "cluster", second), timeout=WAIT, what="the webhook's revision applied")
    assert await image_of(nomad, "app") == "app:2"

    third = origin.commit_and_push({"jobs/app.nomad": job_text("app", image="app:3")}, "app 3")
    await apply(store, gitsource("cluster", {"url": origin.url, "interval": "1h", "requestedAt": "now-please",
                                            "webhookSecret": {"variable": "secrets/cluster-hook"}}))  # fmt: skip
    await eventually(lambda: ready_at(store, "cluster", third), timeout=WAIT, what="requestedAt to fetch")
    assert await image_of(nomad, "app") == "app:3"

    await store.delete("GitSource", "cluster")

    async def gone() -> bool:
        try:
            await store.get("GitSource", "cluster")
        except ResourceNotFound:
            return True
        return False

    await eventually(gone, timeout=WAIT, what="the finalizer removed and the resource gone")
    assert len(process.sources) == 0
    assert (await nomad.read_job("app")).value["Stop"] is False  # a deleted source prunes nothing


async def test_a_credential_that_cannot_work_stalls_the_source_with_the_reason(
    origin: Any, store: ResourceStore, process: OperatorProcess
) -> None:
    await store.apply(gitsource("private", {"url": origin.url, "auth": {"variable": "secrets/nowhere"}}))

    async def stalled() -> dict[str, Any] | None:
        status = await status_of(store, "private")
        stalled = next((c for c in status.get("conditions") or [] if c["type"] == "Stalled"), {})
        return status if stalled.get("status") == "True" else None

    status = await eventually(stalled, timeout=WAIT, what="the source Stalled")
    assert "secrets/nowhere" in status["lastError"]
    assert "does not exist" in status["lastError"]
    assert len(process.sources) == 0
