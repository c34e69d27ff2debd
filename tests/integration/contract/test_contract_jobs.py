"""Contract: the job calls of our client against Nomad (the simulator, or a real cluster with NOMAD_ADDR).

The GitOps controller builds on exactly these behaviours: `EnforceIndex` conflicts as `Conflict` with Nomad's text,
an unchanged spec creating no version, blocking list queries that wake on a change and time out with the data
unchanged, plans with a field diff, the last versions newest first, and stop-then-purge.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
from contract_target import Target, poll, sleeper_job

from nomad_operator.nomad import Conflict, NomadClient, NotFound


async def test_register_creates_version_zero_and_an_evaluation(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("register")
    result = await nomad.register_job(sleeper_job(job_id), enforce_index=True, job_modify_index=0)
    assert result.eval_id
    assert result.job_modify_index > 0
    assert result.index >= result.job_modify_index
    job = await nomad.read_job(job_id)
    assert job.value["ID"] == job_id
    assert job.value["Version"] == 0
    assert job.value["JobModifyIndex"] == result.job_modify_index
    assert job.index >= result.job_modify_index
    evaluation = (await nomad.read_evaluation(result.eval_id)).value
    assert evaluation["JobID"] == job_id
    assert evaluation["TriggeredBy"] == "job-register"


async def test_enforce_index_conflicts_carry_nomads_text(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("enforce")
    first = await nomad.register_job(sleeper_job(job_id), enforce_index=True, job_modify_index=0)
    changed = sleeper_job(job_id, Meta={"revision": "2"})

    with pytest.raises(Conflict) as only_if_new:
        await nomad.register_job(changed, enforce_index=True, job_modify_index=0)
    assert only_if_new.value.message == "Enforcing job modify index 0: job already exists"
    assert only_if_new.value.status == 500
    assert only_if_new.value.current is None

    stale = first.job_modify_index + 1000
    with pytest.raises(Conflict) as wrong_index:
        await nomad.register_job(changed, enforce_index=True, job_modify_index=stale)
    assert wrong_index.value.message == (
        f"Enforcing job modify index {stale}: job exists with conflicting job modify index: {first.job_modify_index}"
    )

    with pytest.raises(Conflict) as missing:
        await nomad.register_job(sleeper_job(target.job_id("absent")), enforce_index=True, job_modify_index=7)
    assert missing.value.message == "Enforcing job modify index 7: job does not exist"

    second = await nomad.register_job(changed, enforce_index=True, job_modify_index=first.job_modify_index)
    assert second.job_modify_index > first.job_modify_index
    job = (await nomad.read_job(job_id)).value
    assert job["Version"] == 1
    assert job["Meta"] == {"revision": "2"}


async def test_unchanged_spec_makes_no_new_version_but_an_evaluation(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("unchanged")
    first = await nomad.register_job(sleeper_job(job_id, count=1))

    async def running() -> dict[str, object] | None:
        job = (await nomad.read_job(job_id)).value
        return job if job["Status"] == "running" else None

    current = await poll(running, deadline=target.poll_deadline, what="the job to run")
    again = await nomad.register_job(
        sleeper_job(job_id, count=1), enforce_index=True, job_modify_index=first.job_modify_index
    )
    # Nomad answers with the live job's ModifyIndex (status updates move it), not a new JobModifyIndex.
    assert again.job_modify_index == current["ModifyIndex"]
    assert again.eval_id
    assert again.eval_id != first.eval_id
    versions = (await nomad.job_versions(job_id)).value["Versions"]
    assert [version["Version"] for version in versions] == [0]
    assert (await nomad.read_job(job_id)).value["JobModifyIndex"] == first.job_modify_index


async def test_read_of_an_unknown_job_is_not_found(target: Target, nomad: NomadClient) -> None:
    with pytest.raises(NotFound) as caught:
        await nomad.read_job(target.job_id("never-registered"))
    assert caught.value.message == "job not found"


async def test_blocking_list_wakes_on_a_register(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("blocking")
    before = await nomad.list_jobs(prefix=job_id)
    assert before.value == []
    assert before.index > 0
    waiting = asyncio.create_task(nomad.list_jobs(prefix=job_id, index=before.index, wait=60.0))
    await asyncio.sleep(0)  # let the query reach the server before the write (it would return at once otherwise)
    await nomad.register_job(sleeper_job(job_id))
    after = await waiting
    assert after.index > before.index
    assert [stub["ID"] for stub in after.value] == [job_id]
    assert after.value[0]["JobModifyIndex"] > 0


async def test_blocking_list_times_out_with_unchanged_data(target: Target, nomad: NomadClient) -> None:
    prefix = target.job_id("nothing-here")
    before = await nomad.list_jobs(prefix=prefix)
    after = await nomad.list_jobs(prefix=prefix, index=before.index, wait=0.3)
    assert after.value == before.value == []
    if not target.is_real:  # a real cluster may change other jobs meanwhile; the simulator is quiet
        assert after.index == before.index


async def test_plan_reports_placements_and_a_field_diff(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("plan")
    job = sleeper_job(job_id, count=2)
    new = await nomad.plan_job(job, diff=True)
    assert new["Diff"]["Type"] == "Added"
    assert new["Diff"]["ID"] == job_id
    assert new["Annotations"]["DesiredTGUpdates"]["app"]["Place"] == 2
    assert new["JobModifyIndex"] == 0

    registered = await nomad.register_job(job)
    unchanged = await nomad.plan_job(job, diff=True)
    assert unchanged["Diff"]["Type"] == "None"
    assert unchanged["JobModifyIndex"] == registered.job_modify_index

    bigger = copy.deepcopy(job)
    bigger["TaskGroups"][0]["Count"] = 3
    edited = await nomad.plan_job(bigger, diff=True)
    assert edited["Diff"]["Type"] == "Edited"
    group_diff = edited["Diff"]["TaskGroups"][0]
    count_fields = [field for field in group_diff["Fields"] if field["Name"] == "Count"]
    assert count_fields == [{"Annotations": None, "Name": "Count", "New": "3", "Old": "2", "Type": "Edited"}]
    assert (await nomad.job_versions(job_id)).value["Versions"][0]["Version"] == 0  # a plan changes nothing


async def test_versions_are_listed_newest_first_with_diffs(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("versions")
    for revision in ("1", "2", "3"):
        await nomad.register_job(sleeper_job(job_id, Meta={"revision": revision}))
    answer = await nomad.job_versions(job_id, diffs=True)
    versions = answer.value["Versions"]
    assert [version["Version"] for version in versions] == [2, 1, 0]
    assert [version["Meta"]["revision"] for version in versions] == ["3", "2", "1"]
    diffs = answer.value["Diffs"]
    assert len(diffs) == 2
    assert all(diff["Type"] == "Edited" for diff in diffs)
    with pytest.raises(NotFound):
        await nomad.job_versions(target.job_id("no-versions"))


async def test_deregister_stops_then_purge_removes(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("deregister")
    await nomad.register_job(sleeper_job(job_id, count=1))

    stopped = await nomad.deregister_job(job_id)
    assert stopped.eval_id
    job = (await nomad.read_job(job_id)).value
    assert job["Stop"] is True

    async def dead() -> bool:
        return bool((await nomad.read_job(job_id)).value["Status"] == "dead")

    await poll(dead, deadline=target.poll_deadline, what="the stopped job to be dead")
    evaluation = (await nomad.read_evaluation(stopped.eval_id)).value
    assert evaluation["TriggeredBy"] == "job-deregister"

    purged = await nomad.deregister_job(job_id, purge=True)
    assert purged.eval_id
    with pytest.raises(NotFound):
        await nomad.read_job(job_id)
    assert [stub["ID"] for stub in (await nomad.list_jobs(prefix=job_id)).value] == []


async def test_deregister_of_an_unknown_job_is_a_no_op(target: Target, nomad: NomadClient) -> None:
    result = await nomad.deregister_job(target.job_id("unknown"), purge=True)
    assert result.eval_id == ""
    assert result.eval_create_index == 0


async def test_summary_counts_the_running_allocations(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("summary")
    await nomad.register_job(sleeper_job(job_id, count=2))

    async def both_running() -> bool:
        summary = (await nomad.job_summary(job_id)).value
        return bool(summary["Summary"]["app"]["Running"] == 2)

    await poll(both_running, deadline=target.poll_deadline, what="a summary of two running allocations")
    summary = (await nomad.job_summary(job_id)).value
    assert summary["JobID"] == job_id
    assert summary["Summary"]["app"]["Queued"] == 0
