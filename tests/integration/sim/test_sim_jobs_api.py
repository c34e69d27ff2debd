"""The jobs API's rules: canonical defaults, versions, unchanged specs, stop and purge, plan with diff,
PreserveCounts, submissions, scaling, and deployments with auto-revert."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from nomad_operator.sim.server import RunningSimulator

Poll = Callable[..., Awaitable[Any]]
MakeJob = Callable[..., dict[str, Any]]


async def _put(http: aiohttp.ClientSession, path: str, body: Any) -> dict[str, Any]:
    async with http.put(path, json=body) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def _get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_register_fills_nomads_defaults(http: aiohttp.ClientSession) -> None:
    minimal = {"ID": "tiny", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "exec"}]}]}
    await _put(http, "/v1/jobs", {"Job": minimal})
    job = await _get(http, "/v1/job/tiny")
    assert (job["Region"], job["Namespace"], job["Type"], job["Priority"]) == ("global", "default", "service", 50)
    assert job["Datacenters"] == ["*"]
    assert job["Name"] == "tiny"
    group = job["TaskGroups"][0]
    task = group["Tasks"][0]
    assert group["Count"] == 1
    assert group["EphemeralDisk"]["SizeMB"] == 300
    assert group["ReschedulePolicy"]["DelayFunction"] == "exponential"
    assert group["Update"]["MaxParallel"] == 1
    assert (task["Resources"]["CPU"], task["Resources"]["MemoryMB"]) == (100, 300)
    assert task["KillTimeout"] == 5_000_000_000
    assert job["SubmitTime"] > 0
    assert job["Version"] == 0
    assert job["JobModifyIndex"] == job["ModifyIndex"] or job["Status"] != "pending"


async def test_unchanged_spec_makes_no_version_but_an_eval(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: MakeJob
) -> None:
    job = make_job("web", count=1, distinct=False)
    first = await _put(http, "/v1/jobs", {"Job": job})
    second = await _put(http, "/v1/jobs", {"Job": job})
    assert second["EvalID"]
    assert second["EvalID"] != first["EvalID"]
    versions = await _get(http, "/v1/job/web/versions")
    assert [v["Version"] for v in versions["Versions"]] == [0]
    changed = copy.deepcopy(job)
    changed["Meta"] = {"rev": "2"}
    third = await _put(http, "/v1/jobs", {"Job": changed})
    assert third["JobModifyIndex"] > first["JobModifyIndex"]
    versions = await _get(http, "/v1/job/web/versions?diffs=true")
    assert [v["Version"] for v in versions["Versions"]] == [1, 0]
    assert versions["Diffs"][0]["Fields"][0]["Name"] == "Meta[rev]"


async def test_only_the_last_six_versions_are_kept(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    job = make_job("many", count=0, distinct=False)
    for number in range(8):
        job["Meta"] = {"n": str(number)}
        await _put(http, "/v1/jobs", {"Job": job})
    versions = await _get(http, "/v1/job/many/versions")
    assert [v["Version"] for v in versions["Versions"]] == [7, 6, 5, 4, 3, 2]


async def test_stop_then_purge(http: aiohttp.ClientSession, poll: Poll, make_job: MakeJob) -> None:
    await _put(http, "/v1/jobs", {"Job": make_job("gone", count=2, distinct=False)})

    async def status_is(value: str) -> bool:
        return str((await _get(http, "/v1/job/gone"))["Status"]) == value

    await poll(lambda: status_is("running"), what="job running")
    async with http.delete("/v1/job/gone") as response:
        stopped = await response.json()
    assert stopped["EvalID"]
    await poll(lambda: status_is("dead"), what="job dead after stop")
    job = await _get(http, "/v1/job/gone")
    assert job["Stop"] is True
    allocs = await _get(http, "/v1/job/gone/allocations")
    assert {a["DesiredStatus"] for a in allocs} == {"stop"}
    assert {a["DesiredDescription"] for a in allocs} == {"alloc not needed due to job update"}
    async with http.delete("/v1/job/gone?purge=true") as response:
        assert response.status == 200
    async with http.get("/v1/job/gone") as response:
        assert response.status == 404
    async with http.delete("/v1/job/never-existed") as response:
        assert response.status == 200
        assert (await response.json())["EvalID"] == ""


async def test_plan_reports_diff_and_placements_without_changing_anything(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: MakeJob
) -> None:
    job = make_job("planned", count=2, distinct=False)
    plan = await _put(http, "/v1/job/planned/plan", {"Job": job, "Diff": True})
    assert plan["Diff"]["Type"] == "Added"
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["Place"] == 2
    assert plan["JobModifyIndex"] == 0
    assert ("default", "planned") not in sim.cluster.store.jobs
    await _put(http, "/v1/jobs", {"Job": job})
    same = await _put(http, "/v1/job/planned/plan", {"Job": job, "Diff": True})
    assert same["Diff"]["Type"] == "None"
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "traefik/whoami:v2"
    edited = await _put(http, "/v1/job/planned/plan", {"Job": job, "Diff": True})
    assert edited["Diff"]["Type"] == "Edited"
    group = edited["Diff"]["TaskGroups"][0]
    assert group["Type"] == "Edited"
    assert group["Tasks"][0]["Type"] == "Edited"
    config = next(o for o in group["Tasks"][0]["Objects"] if o["Name"] == "Config")
    assert config["Fields"][0] == {"Annotations": None, "Name": "image", "New": "traefik/whoami:v2",
                                   "Old": "traefik/whoami", "Type": "Edited"}


async def test_preserve_counts_submission_and_scale(http: aiohttp.ClientSession, poll: Poll,
                                                    make_job: MakeJob) -> None:
    job = make_job("scaled", count=1, distinct=False)
    await _put(http, "/v1/jobs", {"Job": job, "Submission": {"Source": "job \"scaled\" {}", "Format": "hcl2"}})
    source = await _get(http, "/v1/job/scaled/submission?version=0")
    assert source["Source"] == 'job "scaled" {}'
    assert source["Format"] == "hcl2"
    await _put(http, "/v1/job/scaled/scale", {"Count": 3, "Target": {"Group": "web"}})
    job["Meta"] = {"changed": "yes"}
    await _put(http, "/v1/jobs", {"Job": job, "PreserveCounts": True})
    stored = await _get(http, "/v1/job/scaled")
    assert stored["TaskGroups"][0]["Count"] == 3

    async def three_running() -> bool:
        status = await _get(http, "/v1/job/scaled/scale")
        return bool(status["TaskGroups"]["web"]["Running"] == 3)

    await poll(three_running, what="three running after scaling")
    async with http.get("/v1/job/scaled/submission?version=9") as response:
        assert response.status == 404


async def test_deployment_succeeds_and_marks_the_version_stable(
    http: aiohttp.ClientSession, poll: Poll, make_job: MakeJob
) -> None:
    await _put(http, "/v1/jobs", {"Job": make_job("rolled", count=2, distinct=False)})

    async def successful() -> dict[str, Any] | None:
        deployment = await _get(http, "/v1/job/rolled/deployment")
        return deployment if deployment and deployment["Status"] == "successful" else None

    deployment = await poll(successful, what="a successful deployment")
    assert deployment["StatusDescription"] == "Deployment completed successfully"
    assert deployment["TaskGroups"]["web"]["HealthyAllocs"] == 2
    job = await _get(http, "/v1/job/rolled")
    assert job["Stable"] is True
    allocs = await _get(http, "/v1/job/rolled/allocations")
    assert all(a["DeploymentStatus"]["Healthy"] is True for a in allocs)


async def test_unhealthy_deployment_auto_reverts(
    http: aiohttp.ClientSession, poll: Poll, make_job: MakeJob
) -> None:
    job = make_job("revert", count=1, distinct=False)
    job["Update"] = {"AutoRevert": True}
    await _put(http, "/v1/jobs", {"Job": job})

    async def stable() -> bool:
        return bool((await _get(http, "/v1/job/revert"))["Stable"])

    await poll(stable, what="version 0 stable")
    job["Meta"] = {"bad": "release"}
    # A long min_healthy_time (2 h, scaled to 7 s) keeps version 1's deployment running until the failure below.
    job["Update"]["MinHealthyTime"] = 2 * 3600 * 1_000_000_000
    await _put(http, "/v1/jobs", {"Job": job})

    async def deployment_running_v1() -> bool:
        deployment = await _get(http, "/v1/job/revert/deployment")
        allocs = await _get(http, "/v1/job/revert/allocations")
        return bool(deployment and deployment["JobVersion"] == 1 and any(
            a["JobVersion"] == 1 and a["ClientStatus"] == "running" for a in allocs))

    await poll(deployment_running_v1, what="version 1 running in a deployment")
    async with http.post("/v1/sim/job/revert/fail") as response:
        assert response.status == 200

    async def reverted() -> bool:
        current = await _get(http, "/v1/job/revert")
        return bool(current["Version"] == 2 and current["Meta"] is None)

    await poll(reverted, what="the job reverted to version 0's spec as version 2")
    deployments = await _get(http, "/v1/job/revert/deployments")
    failed = next(d for d in deployments if d["JobVersion"] == 1)
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == ("Failed due to unhealthy allocations - rolling back to job version 0")
