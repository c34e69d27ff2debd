"""The sync against the simulator over real HTTP, from real git repositories: writes counted by the simulator."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nomad_operator.controllers.gitops.source_spec import GitSourceSpec
from nomad_operator.controllers.gitops.source_status import SyncState
from nomad_operator.controllers.gitops.source_sync import GitSourceSync
from nomad_operator.jobspec import JobLoader
from nomad_operator.nomad import NomadClient
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import RunningSimulator, start_simulator

STATE_CHANGING_ROUTES = ("PUT /v1/jobs", "DELETE /v1/job/{job_id}", "PUT /v1/job/{job_id}/scale")
SMALL_JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "g" {
    count = 1
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


def small_job(job_id: str, image: str = "busybox:1") -> str:
    return SMALL_JOB % {"id": job_id, "image": image}


def state_writes(sim: RunningSimulator) -> list[dict[str, Any]]:
    """Writes that change the cluster (plans and parses are PUTs that change nothing)."""
    log = sim.cluster.stats_snapshot()["write_log"]
    return [entry for entry in log if not entry["path"].endswith(("/plan", "/parse"))]


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with start_simulator(SimConfig(deployment_time_scale=0.01, task_start=0.01)) as running:
        yield running


@pytest.fixture
async def loader() -> AsyncIterator[JobLoader]:
    async with JobLoader(max_workers=0) as job_loader:
        yield job_loader


@pytest.fixture
def make_source(nomad: NomadClient, loader: JobLoader, tmp_path: Path) -> Callable[..., GitSourceSync]:
    def make(url: str, *, name: str = "cluster", **options: Any) -> GitSourceSync:
        options.setdefault("wave_timeout", 20.0)
        spec = GitSourceSpec(name=name, url=url, **options)
        return GitSourceSync(spec=spec, nomad=nomad, workdir=tmp_path / f"wc-{name}", loader=loader)

    return make


async def test_project_jobs_first_sync_then_one_image_change_is_one_write(
    origin: Any,
    project_root: Path,
    sim: RunningSimulator,
    nomad: NomadClient,
    make_source: Callable[..., GitSourceSync],
) -> None:
    origin.remove("jobs/web.nomad")
    (origin.work / "jobs").mkdir(exist_ok=True)
    for path in sorted((project_root / "jobs").glob("*.nomad")):
        shutil.copy(path, origin.work / "jobs" / path.name)
    origin.commit("the project's own jobs")
    origin.push()
    source = make_source(origin.url, paths=("jobs/*.nomad",))

    first = await source.sync_once()
    assert first.result == "Applied", source.status.message
    created = {entry["path"] for entry in state_writes(sim)}
    assert created == {"/v1/jobs"}
    assert len(state_writes(sim)) == 4
    jobs = (await nomad.list_jobs()).value
    assert sorted(job["ID"] for job in jobs) == ["consul", "fabio", "nomad-operator", "whoami"]
    live = (await nomad.read_job("whoami")).value
    assert live["Meta"]["nomad-operator.source"] == "default/cluster"
    assert live["Meta"]["nomad-operator.path"] == "jobs/whoami.nomad"
    submission = await nomad._query("/v1/job/whoami/submission", params={"version": "0"})
    assert "traefik/whoami" in submission.value["Source"]

    sim.cluster.stats.reset()
    noop = await source.sync_once(reasons=frozenset({"interval"}))
    assert noop.result == "NoChange"
    assert sim.cluster.stats_snapshot()["write_count"] == 0  # not even a plan

    text = (origin.work / "jobs/whoami.nomad").read_text().replace("whoami:v1.10.4", "whoami:v1.10.5")
    origin.commit_and_push({"jobs/whoami.nomad": text}, "bump whoami")
    sim.cluster.stats.reset()
    changed = await source.sync_once()
    assert changed.result == "Applied", source.status.message
    writes = state_writes(sim)
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/v1/jobs")]
    live = (await nomad.read_job("whoami")).value
    assert live["TaskGroups"][0]["Tasks"][0]["Config"]["image"].endswith("v1.10.5")
    assert live["Version"] == 1
    document = source.sink.documents["default/cluster"]  # type: ignore[attr-defined]
    assert document["lastAppliedRevision"] == changed.desired.revision if changed.desired else False
    assert [h["result"] for h in document["history"]] == ["Applied", "NoChange", "Applied"]


async def test_file_removed_stays_with_prune_off_and_goes_after_grace_with_prune_on(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.remove("jobs/web.nomad")
    origin.commit_and_push({"jobs/a.nomad": small_job("a"), "jobs/b.nomad": small_job("b"),
                            "jobs/c.nomad": small_job("c")}, "three jobs")  # fmt: skip
    kept = make_source(origin.url)
    assert (await kept.sync_once()).result == "Applied"
    origin.remove("jobs/c.nomad")
    origin.commit("remove c")
    origin.push()
    await kept.sync_once()
    assert kept.status.jobs[("default", "c")].sync is SyncState.ORPHANED
    assert "prune is off" in kept.status.jobs[("default", "c")].message
    assert (await nomad.read_job("c")).value["Stop"] is False

    clock = [1000.0]
    pruning = make_source(origin.url, prune=True, prune_grace=60.0)
    pruning.engine.clock = lambda: clock[0]
    pruning.engine.prune_guard = kept.engine.prune_guard.__class__()
    await pruning.sync_once()
    assert (await nomad.read_job("c")).value["Stop"] is False  # inside the grace period
    assert "grace" in pruning.status.jobs[("default", "c")].message
    clock[0] += 61.0
    result = await pruning.sync_once(reasons=frozenset({"interval"}))
    assert result.report is not None
    assert result.report.writes == 1
    assert (await nomad.read_job("c")).value["Stop"] is True
    assert pruning.status.jobs[("default", "c")].sync is SyncState.PRUNED
    assert (await nomad.read_job("a")).value["Stop"] is False


async def test_broken_file_fails_alone_and_nothing_is_pruned(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.remove("jobs/web.nomad")
    origin.commit_and_push({"jobs/a.nomad": small_job("a"), "jobs/b.nomad": small_job("b")}, "two")
    source = make_source(origin.url, prune=True, prune_grace=0.0)
    assert (await source.sync_once()).result == "Applied"
    origin.commit_and_push({"jobs/b.nomad": 'job "b" {\n  group "g" {\n', "jobs/new.nomad": small_job("new")}, "bad")
    result = await source.sync_once()
    assert result.result == "Failed"
    assert "jobs/b.nomad" in source.status.file_errors
    assert str(source.repository.directory) not in source.status.file_errors["jobs/b.nomad"]
    assert (await nomad.read_job("new")).value["Stop"] is False  # the others sync
    assert (await nomad.read_job("b")).value["Stop"] is False  # nothing is pruned
    document = source.sink.documents["default/cluster"]  # type: ignore[attr-defined]
    assert document["lastAppliedRevision"] != document["lastFetchedRevision"]
    ready = next(c for c in document["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "jobs/b.nomad" in ready["message"]


async def test_hand_edit_is_reported_as_drift_and_healed(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": small_job("web")}, "web")
    watcher = make_source(origin.url, self_heal=False)
    assert (await watcher.sync_once()).result == "Applied"
    live = (await nomad.read_job("web")).value
    live["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "evil:6"
    await nomad.register_job(live)
    await watcher.sync_once(reasons=frozenset({"event"}))
    entry = watcher.status.jobs[("default", "web")]
    assert entry.sync is SyncState.OUT_OF_SYNC
    assert "Config.image" in entry.message
    assert [str(c) for c in watcher.engine.drift_changes[("default", "web")]] == [
        "~ TaskGroups[g].Tasks[t].Config.image: evil:6 => busybox:1"
    ]
    healer = make_source(origin.url, name="cluster")
    healer.engine.drift = watcher.engine.drift
    sim.cluster.stats.reset()
    await healer.sync_once(reasons=frozenset({"event"}))
    assert (await nomad.read_job("web")).value["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "busybox:1"
    assert len(state_writes(sim)) == 1
    assert healer.status.jobs[("default", "web")].sync is SyncState.SYNCED


async def test_two_sources_claiming_one_job_conflict_without_flip_flop(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": small_job("web")}, "web")
    other = type(origin)(origin.bare.parent, "other")
    other.commit_and_push({"jobs/web.nomad": small_job("web", "other:1")}, "web, differently")
    first, second = make_source(origin.url, name="first"), make_source(other.url, name="second")
    assert (await first.sync_once()).result == "Applied"
    for _ in range(3):
        assert (await second.sync_once()).result == "Failed"
        await first.sync_once()
    assert second.status.jobs[("default", "web")].sync is SyncState.CONFLICT
    assert "default/first" in second.status.jobs[("default", "web")].message
    live = (await nomad.read_job("web")).value
    assert live["Version"] == 0
    assert live["Meta"]["nomad-operator.source"] == "default/first"


async def test_a_third_of_writes_failing_still_converges_without_loss(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    files = {f"jobs/j{i}.nomad": small_job(f"j{i}") for i in range(9)} | {"jobs/web.nomad": small_job("web")}
    origin.commit_and_push(files, "nine jobs")
    sim.cluster.inject_fault({"path": "^/v1/jobs$", "method": "PUT", "status": 500, "rate": 0.33})
    source = make_source(origin.url)
    for _ in range(5):
        result = await source.sync_once(reasons=frozenset({"interval"}))
        if result.result in ("Applied", "NoChange"):
            break
    assert result.result in ("Applied", "NoChange"), source.status.message
    ids = sorted(job["ID"] for job in (await nomad.list_jobs()).value)
    assert ids == sorted(["web", *(f"j{i}" for i in range(9))])
    versions = [(await nomad.read_job(job_id)).value["Version"] for job_id in ids]
    assert versions == [0] * len(ids)  # each registered once: no retry created a second version


async def test_unreachable_remote_keeps_the_last_good_state_and_says_so(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": small_job("web")}, "a valid job")
    source = make_source(origin.url)
    assert (await source.sync_once()).result == "Applied"
    good = source.status.last_applied_revision
    shutil.move(origin.bare, origin.bare.with_name("gone.git"))
    result = await source.sync_once()
    assert result.result == "FetchFailed"
    assert source.status.fetch_failures == 1
    document = source.sink.documents["default/cluster"]  # type: ignore[attr-defined]
    assert "retrying in" in document["lastError"]
    assert good is not None
    assert good[:12] in document["lastError"]
    assert document["lastAppliedRevision"] == good
    assert (await nomad.read_job("web")).value["Stop"] is False
    shutil.move(origin.bare.with_name("gone.git"), origin.bare)
    assert (await source.sync_once()).result in ("NoChange", "Applied")
    assert source.status.fetch_failures == 0


async def test_force_push_rewriting_history_is_followed(
    origin: Any, sim: RunningSimulator, nomad: NomadClient, make_source: Callable[..., GitSourceSync]
) -> None:
    origin.commit_and_push({"jobs/web.nomad": small_job("web", "web:2")}, "v2")
    source = make_source(origin.url)
    await source.sync_once()
    origin.write("jobs/web.nomad", small_job("web", "web:3"))
    rewritten = origin.commit("v3 instead", amend=True)
    origin.push(force=True)
    result = await source.sync_once()
    assert result.result == "Applied"
    assert source.status.last_applied_revision == rewritten
    assert (await nomad.read_job("web")).value["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "web:3"
