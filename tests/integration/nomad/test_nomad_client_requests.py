"""What the client sends and how it reads answers: headers, parameters, blocking queries, bodies of each call."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from nomad_fake_server import TOKEN, FakeNomad, respond

from nomad_operator.durations import parse_duration, to_seconds
from nomad_operator.nomad import NO_RETRY, NomadClient, NomadSettings, NomadUnreachable, lock_id_of

META = {"X-Nomad-Index": "42", "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "7"}


async def test_reads_send_token_and_default_namespace_and_region(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, [{"ID": "web"}], META))

    result = await client.list_jobs(prefix="we")

    assert result.value == [{"ID": "web"}]
    assert (result.index, result.known_leader, result.last_contact_ms) == (42, True, 7)
    (sent,) = fake_nomad.sent("GET", "/v1/jobs")
    assert sent.headers["X-Nomad-Token"] == TOKEN
    assert dict(sent.query) == {"prefix": "we", "namespace": "apps", "region": "eu"}


async def test_namespace_and_region_are_overridable_per_call(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/job/web", (200, {"ID": "web"}, META))

    await client.read_job("web", namespace="*", region="us")

    (sent,) = fake_nomad.sent("GET", "/v1/job/web")
    assert (sent.query["namespace"], sent.query["region"]) == ("*", "us")


async def test_no_token_and_no_namespace_when_none_configured(fake_nomad: FakeNomad) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, []))
    async with NomadClient(NomadSettings(address=fake_nomad.url)) as nomad:
        result = await nomad.list_jobs()

    (sent,) = fake_nomad.requests
    assert "X-Nomad-Token" not in sent.headers
    assert dict(sent.query) == {}
    assert (result.index, result.known_leader, result.last_contact_ms) == (0, False, 0)


async def test_blocking_query_sends_index_and_wait_as_go_duration(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/var/app/config", (200, {"Path": "app/config", "Items": {"a": "1"}}, META))

    result = await client.read_variable("app/config", index=41, wait=2.5)

    (sent,) = fake_nomad.requests
    assert (sent.query["index"], sent.query["wait"]) == ("41", "2.5s")
    assert result.index == 42


async def test_blocking_read_outlives_the_ordinary_request_timeout(fake_nomad: FakeNomad) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        # Nomad holds a blocking query for up to `wait` before answering unchanged data.
        await asyncio.sleep(to_seconds(parse_duration(request.query.get("wait", "600ms"))))
        return respond(200, [], {"X-Nomad-Index": "9"})

    fake_nomad.on("GET", "/v1/jobs", slow)
    settings = NomadSettings(address=fake_nomad.url)
    async with NomadClient(settings, request_timeout=0.2, retry=NO_RETRY) as nomad:
        blocked = await nomad.list_jobs(index=9, wait=0.6)
        with pytest.raises(NomadUnreachable, match="no answer in time"):
            await nomad.list_jobs()
    assert blocked.index == 9


async def test_index_zero_is_not_a_blocking_query(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, []))

    await client.list_jobs(index=0, wait=5)

    assert "index" not in fake_nomad.requests[0].query


async def test_register_sends_enforce_index_and_returns_typed_answer(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    answer = {"EvalID": "e1", "EvalCreateIndex": 50, "JobModifyIndex": 50, "Warnings": "", "Index": 50}
    fake_nomad.reply("PUT", "/v1/jobs", (200, answer, {"X-Nomad-Index": "50"}))
    job = {"ID": "web", "Name": "web", "TaskGroups": []}

    result = await client.register_job(job, enforce_index=True, job_modify_index=12, submission={"Source": "job {}"})

    (sent,) = fake_nomad.requests
    assert sent.json() == {"Job": job, "EnforceIndex": True, "JobModifyIndex": 12, "Submission": {"Source": "job {}"}}
    assert sent.headers["Content-Type"] == "application/json"
    assert (result.eval_id, result.job_modify_index, result.index) == ("e1", 50, 50)


async def test_plan_parse_deregister_and_scale_bodies(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/job/web/plan", (200, {"Diff": {"Type": "None"}, "JobModifyIndex": 3}))
    fake_nomad.reply("PUT", "/v1/jobs/parse", (200, {"ID": "web"}))
    fake_nomad.reply("DELETE", "/v1/job/web", (200, {"EvalID": "", "JobModifyIndex": 0}, {"X-Nomad-Index": "8"}))
    fake_nomad.reply("PUT", "/v1/job/web/scale", (200, {"EvalID": "e9", "JobModifyIndex": 9}))

    plan = await client.plan_job({"ID": "web"}, diff=True)
    parsed = await client.parse_job('job "web" {}', variables="count = 2\n", canonicalize=True)
    stopped = await client.deregister_job("web", purge=True)
    scaled = await client.scale_job("web", group="web", count=3, message="rebalance")

    assert plan["Diff"] == {"Type": "None"}
    assert parsed == {"ID": "web"}
    assert (stopped.eval_id, stopped.index) == ("", 8)
    assert scaled.eval_id == "e9"
    assert fake_nomad.sent("PUT", "/v1/job/web/plan")[0].json() == {"Job": {"ID": "web"}, "Diff": True}
    parse_request = fake_nomad.sent("PUT", "/v1/jobs/parse")[0]
    assert parse_request.json() == {"JobHCL": 'job "web" {}', "Canonicalize": True, "Variables": "count = 2\n"}
    assert "namespace" not in parse_request.query
    assert fake_nomad.sent("DELETE", "/v1/job/web")[0].query["purge"] == "true"
    assert fake_nomad.sent("PUT", "/v1/job/web/scale")[0].json() == {
        "Count": 3,
        "Target": {"Group": "web"},
        "PolicyOverride": False,
        "Message": "rebalance",
    }


async def test_job_ids_are_escaped_in_paths(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/job/batch/periodic-1/summary", (200, {"JobID": "batch/periodic-1"}))

    await client.job_summary("batch/periodic-1")

    assert fake_nomad.requests[0].raw_path.startswith("/v1/job/batch%2Fperiodic-1/summary")


async def test_job_sub_resources(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/job/web/versions", (200, {"Versions": [{"Version": 1}], "Diffs": None}, META))
    fake_nomad.reply("GET", "/v1/job/web/allocations", (200, [{"ID": "a1"}], META))
    fake_nomad.reply("GET", "/v1/job/web/evaluations", (200, [{"ID": "e1"}], META))
    fake_nomad.reply("GET", "/v1/job/web/deployment", (200, None, META))
    fake_nomad.reply("GET", "/v1/job/web/deployments", (200, [], META))
    fake_nomad.reply("PUT", "/v1/job/web/evaluate", (200, {"EvalID": "e2"}))

    assert (await client.job_versions("web", diffs=True)).value["Versions"] == [{"Version": 1}]
    assert (await client.job_allocations("web", all_versions=True)).value == [{"ID": "a1"}]
    assert (await client.job_evaluations("web")).value == [{"ID": "e1"}]
    assert (await client.job_deployment("web")).value is None
    assert (await client.job_deployments("web")).value == []
    assert (await client.evaluate_job("web", force_reschedule=True)).eval_id == "e2"
    assert fake_nomad.sent("GET", "/v1/job/web/versions")[0].query["diffs"] == "true"
    assert fake_nomad.sent("GET", "/v1/job/web/allocations")[0].query["all"] == "true"
    assert fake_nomad.sent("PUT", "/v1/job/web/evaluate")[0].json()["EvalOptions"] == {"ForceReschedule": True}


async def test_variables_cas_and_delete(fake_nomad: FakeNomad, client: NomadClient) -> None:
    written = {"Path": "op/status", "Items": {"phase": "ready"}, "ModifyIndex": 31}
    fake_nomad.reply("PUT", "/v1/var/op/status", (200, written, {"X-Nomad-Index": "31"}))
    fake_nomad.reply("DELETE", "/v1/var/op/status", (204, None, {"X-Nomad-Index": "32"}))
    fake_nomad.reply("GET", "/v1/vars", (200, [{"Path": "op/status"}], META))

    assert await client.put_variable("op/status", {"phase": "ready"}, cas=30) == written
    await client.delete_variable("op/status", cas=31)
    assert (await client.list_variables(prefix="op/")).value == [{"Path": "op/status"}]

    put, delete = fake_nomad.sent("PUT", "/v1/var/op/status")[0], fake_nomad.sent("DELETE", "/v1/var/op/status")[0]
    assert put.query["cas"] == "30"
    assert put.json() == {"Path": "op/status", "Items": {"phase": "ready"}}
    assert delete.query["cas"] == "31"
    assert fake_nomad.sent("GET", "/v1/vars")[0].query["prefix"] == "op/"


async def test_lock_calls_select_the_operation_by_parameter(fake_nomad: FakeNomad, client: NomadClient) -> None:
    locked = {"Path": "op/leader", "Lock": {"ID": "lock-1", "TTL": "15s", "LockDelay": "15s"}}

    async def lock_route(request: web.Request) -> web.StreamResponse:
        return respond(200, locked if "lock-acquire" in request.query else {"Path": "op/leader"})

    fake_nomad.on("PUT", "/v1/var/op/leader", lock_route)

    variable = await client.lock_acquire("op/leader", ttl=20, lock_delay=5, items={"holder": "pi-1"})
    await client.lock_renew("op/leader", lock_id_of(variable) or "")
    await client.lock_release("op/leader", "lock-1")

    acquire, renew, release = fake_nomad.sent("PUT", "/v1/var/op/leader")
    assert lock_id_of(variable) == "lock-1"
    assert "lock-acquire" in acquire.query
    assert acquire.json() == {
        "Path": "op/leader",
        "Lock": {"TTL": "20s", "LockDelay": "5s"},
        "Items": {"holder": "pi-1"},
    }
    assert "lock-renew" in renew.query
    assert "lock-release" in release.query
    assert renew.json() == {"Path": "op/leader", "Lock": {"ID": "lock-1"}}


async def test_node_drain_and_eligibility(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/node/n1/drain", (200, {"EvalIDs": ["e1"], "NodeModifyIndex": 70}))
    fake_nomad.reply("PUT", "/v1/node/n1/eligibility", (200, {"EvalIDs": [], "NodeModifyIndex": 71}))
    fake_nomad.reply("GET", "/v1/node/n1/allocations", (200, [{"ID": "a1"}], META))

    await client.drain_node("n1", deadline_ns=-1, ignore_system_jobs=True, meta={"reason": "rebalance"})
    await client.drain_node("n1", deadline_ns=None, mark_eligible=True)
    await client.set_node_eligibility("n1", eligible=False)
    allocations = await client.node_allocations("n1")

    start, stop = fake_nomad.sent("PUT", "/v1/node/n1/drain")
    assert start.json() == {
        "DrainSpec": {"Deadline": -1, "IgnoreSystemJobs": True},
        "MarkEligible": False,
        "Meta": {"reason": "rebalance"},
    }
    assert stop.json() == {"DrainSpec": None, "MarkEligible": True}
    assert "namespace" not in start.query
    assert fake_nomad.sent("PUT", "/v1/node/n1/eligibility")[0].json() == {"Eligibility": "ineligible"}
    assert allocations.value == [{"ID": "a1"}]


async def test_cluster_reads(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/status/leader", (200, "10.0.0.1:4647"))
    fake_nomad.reply("GET", "/v1/agent/self", (200, {"config": {"Region": "eu"}}))
    fake_nomad.reply("GET", "/v1/acl/token/self", (200, {"AccessorID": "acc", "SecretID": TOKEN, "Type": "client"}))
    fake_nomad.reply("GET", "/v1/nodes", (200, [{"ID": "n1"}], META))
    fake_nomad.reply("GET", "/v1/node/n1", (200, {"ID": "n1"}, META))
    fake_nomad.reply("GET", "/v1/allocations", (200, [{"ID": "a1"}], META))
    fake_nomad.reply("GET", "/v1/allocation/a1", (200, {"ID": "a1"}, META))
    fake_nomad.reply("PUT", "/v1/allocation/a1/stop", (200, {"EvalID": "e5", "Index": 80}))
    fake_nomad.reply("GET", "/v1/evaluations", (200, [{"ID": "e1"}], META))
    fake_nomad.reply("GET", "/v1/evaluation/e1", (200, {"ID": "e1"}, META))
    fake_nomad.reply("GET", "/v1/deployments", (200, [{"ID": "d1"}], META))
    fake_nomad.reply("GET", "/v1/deployment/d1", (200, {"ID": "d1"}, META))
    fake_nomad.reply("GET", "/v1/services", (200, [{"Namespace": "apps", "Services": []}], META))
    fake_nomad.reply("GET", "/v1/service/whoami", (200, [{"ServiceName": "whoami"}], META))

    assert await client.status_leader() == "10.0.0.1:4647"
    assert (await client.agent_self())["config"] == {"Region": "eu"}
    assert await client.acl_token_self() == {"AccessorID": "acc", "Type": "client"}
    assert (await client.list_nodes(prefix="n")).value == [{"ID": "n1"}]
    assert (await client.read_node("n1")).index == 42
    assert (await client.list_allocations()).value == [{"ID": "a1"}]
    assert (await client.read_allocation("a1")).value == {"ID": "a1"}
    assert (await client.stop_allocation("a1", no_shutdown_delay=True))["EvalID"] == "e5"
    assert (await client.list_evaluations()).value == [{"ID": "e1"}]
    assert (await client.read_evaluation("e1")).value == {"ID": "e1"}
    assert (await client.list_deployments()).value == [{"ID": "d1"}]
    assert (await client.read_deployment("d1")).value == {"ID": "d1"}
    assert (await client.list_services()).value == [{"Namespace": "apps", "Services": []}]
    assert (await client.read_service("whoami")).value == [{"ServiceName": "whoami"}]
    assert fake_nomad.sent("PUT", "/v1/allocation/a1/stop")[0].query["no_shutdown_delay"] == "true"
    assert "namespace" not in fake_nomad.sent("GET", "/v1/nodes")[0].query


async def test_the_user_agent_names_the_replica() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("User-Agent", ""))
        return web.json_response([], headers={"X-Nomad-Index": "1"})

    app = web.Application()
    app.router.add_get("/v1/jobs", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = NomadSettings(address=f"http://127.0.0.1:{port}")
        async with NomadClient(settings, user_agent="nomad-operator/0.1.0 replica=a") as client:
            await client.list_jobs()
        async with NomadClient(settings) as client:
            await client.list_jobs()
    finally:
        await runner.cleanup()
    assert seen == ["nomad-operator/0.1.0 replica=a", "nomad-operator"]
