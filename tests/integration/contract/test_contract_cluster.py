"""Contract: allocations, nodes, evaluations, deployments and services through our client.

The node controller drains nodes and flips their eligibility, and the health checks of the GitOps controller read
allocations, deployments and services; these tests pin the shapes and errors those readers rely on, including the
uncoded 500s Nomad answers for an impossible eligibility change.
"""

from __future__ import annotations

from typing import Any

import pytest
from contract_target import ALLOW_DRAIN_ON_REAL, Target, poll, sleeper_job

from nomad_operator.nomad import NomadClient, NotFound, ServerError

NODE_STATUSES = {"initializing", "ready", "down", "disconnected"}


async def _running_allocs(nomad: NomadClient, target: Target, job_id: str, count: int) -> list[dict[str, Any]]:
    async def running() -> list[dict[str, Any]] | None:
        allocs = (await nomad.job_allocations(job_id)).value
        live = [a for a in allocs if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]
        return live if len(live) == count else None

    result: list[dict[str, Any]] = await poll(running, deadline=target.poll_deadline, what=f"{count} running allocs")
    return result


async def test_job_allocations_run_and_read_back(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("allocs")
    assert (await nomad.job_allocations(job_id)).value == []
    await nomad.register_job(sleeper_job(job_id, count=2))
    allocs = await _running_allocs(nomad, target, job_id, 2)
    assert sorted(alloc["Name"] for alloc in allocs) == [f"{job_id}.app[0]", f"{job_id}.app[1]"]
    full = await nomad.read_allocation(allocs[0]["ID"])
    assert full.value["ID"] == allocs[0]["ID"]
    assert full.value["JobID"] == job_id
    assert full.value["Job"]["ID"] == job_id  # the full allocation embeds its job; the stub does not
    assert "Job" not in allocs[0]
    assert full.index > 0
    listed = (await nomad.list_allocations(prefix=allocs[0]["ID"][:8])).value
    assert allocs[0]["ID"] in {alloc["ID"] for alloc in listed}
    with pytest.raises(NotFound):
        await nomad.read_allocation("00000000-0000-0000-0000-000000000000")


async def test_alloc_stop_gets_a_replacement(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("alloc-stop")
    await nomad.register_job(sleeper_job(job_id, count=1))
    [victim] = await _running_allocs(nomad, target, job_id, 1)
    answer = await nomad.stop_allocation(victim["ID"])
    assert answer["EvalID"]
    evaluation = (await nomad.read_evaluation(answer["EvalID"])).value
    assert evaluation["TriggeredBy"] == "alloc-stop"

    async def replaced() -> dict[str, Any] | None:
        allocs = (await nomad.job_allocations(job_id)).value
        for alloc in allocs:
            if alloc["ID"] != victim["ID"] and alloc["ClientStatus"] == "running":
                return alloc
        return None

    replacement = await poll(replaced, deadline=target.poll_deadline, what="a running replacement")
    assert replacement["Name"] == victim["Name"]  # the replacement takes the stopped one's name index
    stopped = (await nomad.read_allocation(victim["ID"])).value
    assert stopped["DesiredStatus"] == "stop"
    assert stopped["NextAllocation"] == replacement["ID"]


async def test_nodes_list_and_read(target: Target, nomad: NomadClient) -> None:
    listed = await nomad.list_nodes()
    assert listed.value
    assert listed.index > 0
    for stub in listed.value:
        assert stub["Status"] in NODE_STATUSES
        assert stub["SchedulingEligibility"] in {"eligible", "ineligible"}
        assert "Attributes" not in stub  # stubs carry no attributes
    node = await nomad.read_node(listed.value[0]["ID"])
    assert node.value["ID"] == listed.value[0]["ID"]
    assert node.value["Name"] == listed.value[0]["Name"]
    assert node.value["Attributes"]["cpu.arch"]
    assert node.index == node.value["ModifyIndex"]
    with pytest.raises(NotFound) as caught:
        await nomad.read_node("ffffffff-ffff-ffff-ffff-ffffffffffff")
    assert "node not found" in caught.value.message


async def _a_ready_node(nomad: NomadClient) -> dict[str, Any]:
    nodes = [node for node in (await nomad.list_nodes()).value if node["Status"] == "ready"]
    assert nodes, "the cluster has no ready node"
    return nodes[-1]


async def test_eligibility_and_drain_with_their_errors(slow_stop_target: Target) -> None:
    target = slow_stop_target
    if target.is_real and not ALLOW_DRAIN_ON_REAL:
        pytest.skip("draining a node of a real cluster moves its work: set NOMAD_CONTRACT_ALLOW_DRAIN=1 to run it")
    async with NomadClient(target.settings()) as nomad:
        node_id = (await _a_ready_node(nomad))["ID"]
        try:
            await _check_eligibility_and_drain(target, nomad, node_id)
        finally:
            await nomad.drain_node(node_id, deadline_ns=None, mark_eligible=True)


async def _check_eligibility_and_drain(target: Target, nomad: NomadClient, node_id: str) -> None:
    answer = await nomad.set_node_eligibility(node_id, False)
    assert answer["NodeModifyIndex"] > 0
    assert (await nomad.read_node(node_id)).value["SchedulingEligibility"] == "ineligible"
    await nomad.set_node_eligibility(node_id, True)
    assert (await nomad.read_node(node_id)).value["SchedulingEligibility"] == "eligible"

    # An allocation pinned to the node, slow to stop (busybox sleep as PID 1 ignores SIGTERM, so a real client waits
    # for the kill timeout), keeps the drain going while we look at it.
    job_id = target.job_id("drain")
    pinned = {"LTarget": "${node.unique.id}", "Operand": "=", "RTarget": node_id}
    job = sleeper_job(job_id, count=1, Constraints=[pinned])
    job["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = 60 * 10**9
    await nomad.register_job(job)
    await _running_allocs(nomad, target, job_id, 1)

    drained = await nomad.drain_node(node_id, deadline_ns=3600 * 10**9, ignore_system_jobs=True)
    assert drained["NodeModifyIndex"] > 0
    node = (await nomad.read_node(node_id)).value
    assert node["SchedulingEligibility"] == "ineligible"
    assert node["DrainStrategy"]["Deadline"] == 3600 * 10**9
    assert node["DrainStrategy"]["IgnoreSystemJobs"] is True

    with pytest.raises(ServerError) as refused:
        await nomad.set_node_eligibility(node_id, True)
    assert refused.value.status == 500
    assert refused.value.message == "can not set node's scheduling eligibility to eligible while it is draining"
    assert refused.value.transient is False

    await nomad.drain_node(node_id, deadline_ns=None)  # stopping a drain leaves the node ineligible...
    node = (await nomad.read_node(node_id)).value
    assert node["DrainStrategy"] is None
    assert node["SchedulingEligibility"] == "ineligible"
    await nomad.drain_node(node_id, deadline_ns=None, mark_eligible=True)  # ...unless asked
    assert (await nomad.read_node(node_id)).value["SchedulingEligibility"] == "eligible"


async def test_eligibility_of_an_unknown_node_is_a_server_error(target: Target, nomad: NomadClient) -> None:
    with pytest.raises(ServerError) as caught:
        await nomad.set_node_eligibility("ffffffff-ffff-ffff-ffff-ffffffffffff", False)
    assert "not found" in caught.value.message


async def test_evaluations_list_and_read(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("evals")
    registered = await nomad.register_job(sleeper_job(job_id, count=1))

    async def complete() -> dict[str, Any] | None:
        evaluation = (await nomad.read_evaluation(registered.eval_id)).value
        return evaluation if evaluation["Status"] == "complete" else None

    evaluation = await poll(complete, deadline=target.poll_deadline, what="the register evaluation to complete")
    assert evaluation["JobID"] == job_id
    assert evaluation["Type"] == "service"
    listed = (await nomad.list_evaluations(prefix=registered.eval_id[:8])).value
    assert registered.eval_id in {item["ID"] for item in listed}
    of_job = (await nomad.job_evaluations(job_id)).value
    assert [item["ID"] for item in of_job] == [registered.eval_id]
    with pytest.raises(NotFound):
        await nomad.read_evaluation("00000000-0000-0000-0000-000000000000")


async def test_deployments_of_a_job_with_an_update_block(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("deploy")
    assert (await nomad.job_deployment(job_id)).value is None
    update = {"MaxParallel": 1, "HealthCheck": "task_states", "MinHealthyTime": 10**9, "HealthyDeadline": 60 * 10**9}
    await nomad.register_job(sleeper_job(job_id, count=1, Update=update))

    async def deployed() -> dict[str, Any] | None:
        return (await nomad.job_deployment(job_id)).value

    deployment = await poll(deployed, deadline=target.poll_deadline, what="a deployment of the job")
    assert deployment["JobID"] == job_id
    assert deployment["JobVersion"] == 0
    read = (await nomad.read_deployment(deployment["ID"])).value
    assert read["ID"] == deployment["ID"]
    assert read["TaskGroups"]["app"]["DesiredTotal"] == 1
    assert [item["ID"] for item in (await nomad.job_deployments(job_id)).value] == [deployment["ID"]]
    listed = (await nomad.list_deployments(prefix=deployment["ID"][:8])).value
    assert deployment["ID"] in {item["ID"] for item in listed}

    async def successful() -> bool:
        return bool((await nomad.read_deployment(deployment["ID"])).value["Status"] == "successful")

    await poll(successful, deadline=target.poll_deadline, what="the deployment to succeed")
    with pytest.raises(NotFound):
        await nomad.read_deployment("00000000-0000-0000-0000-000000000000")


async def test_services_follow_the_allocations(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("services")
    service = f"{job_id}-svc"
    await nomad.register_job(sleeper_job(job_id, count=2))
    allocs = await _running_allocs(nomad, target, job_id, 2)

    async def registered() -> list[dict[str, Any]] | None:
        instances = (await nomad.read_service(service)).value
        return instances if len(instances) == 2 else None

    instances = await poll(registered, deadline=target.poll_deadline, what="two service registrations")
    assert {instance["AllocID"] for instance in instances} == {alloc["ID"] for alloc in allocs}
    for instance in instances:
        assert instance["ServiceName"] == service
        assert instance["JobID"] == job_id
        assert instance["Tags"] == ["contract"]
        assert instance["Address"]
        assert 20000 <= instance["Port"] <= 32000
    catalog = (await nomad.list_services()).value
    names = {entry["ServiceName"] for namespace in catalog for entry in namespace["Services"]}
    assert service in names

    await nomad.deregister_job(job_id)

    async def gone() -> bool:
        return (await nomad.read_service(service)).value == []

    await poll(gone, deadline=target.poll_deadline, what="the service registrations to go")
