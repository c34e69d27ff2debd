"""Contract: the event stream as informers use it, read through our `EventStream`.

Informers trust three things: the Types and Keys of a register are Nomad's (Job and Evaluation events typed
`JobRegistered`, new allocations typed `PlanResult`, client updates `AllocationUpdated`, with the job ID in the
FilterKeys of evaluations and allocations); a stream resumed from the last index it handled neither repeats nor skips
a batch; and a cut stream says so (`StreamReset`) before it carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from contract_target import Target, sleeper_job

from nomad_operator.nomad import Backoff, Event, EventBatch, EventStream, NomadClient, StreamReset

FAST_BACKOFF = Backoff(initial=0.05, maximum=0.05, jitter=0.0)


async def _collect(
    stream: EventStream, target: Target, *, until: Callable[[list[Event]], bool], what: str
) -> tuple[list[EventBatch], list[StreamReset]]:
    """Batches (and resets) from `stream` until `until(all events so far)` holds; fails after the poll deadline."""
    batches: list[EventBatch] = []
    resets: list[StreamReset] = []
    events: list[Event] = []
    try:
        async with asyncio.timeout(target.poll_deadline):
            async for item in stream:
                if isinstance(item, StreamReset):
                    resets.append(item)
                    continue
                batches.append(item)
                events.extend(item.events)
                if until(events):
                    break
    except TimeoutError:
        seen = [(event.topic, event.type, event.key) for event in events]
        raise AssertionError(f"timed out waiting for {what}; events seen: {seen}") from None
    return batches, resets


def _running_allocs(events: list[Event]) -> set[str]:
    running = set()
    for event in events:
        alloc = event.object
        if event.topic == "Allocation" and alloc is not None and alloc.get("ClientStatus") == "running":
            running.add(event.key)
    return running


def _job_topics(job_id: str) -> dict[str, list[str]]:
    return {"Job": [job_id], "Allocation": [job_id]}


async def test_register_events_have_nomads_types_and_keys(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("events")
    start = (await nomad.list_jobs()).index
    async with nomad.event_stream(_job_topics(job_id), after_index=start) as stream:
        registered = await nomad.register_job(sleeper_job(job_id, count=2))
        batches, resets = await _collect(
            stream, target, until=lambda events: len(_running_allocs(events)) == 2, what="two running allocations"
        )
    assert resets == []
    events = [event for batch in batches for event in batch.events]
    assert all(batch.index > start for batch in batches)
    assert [batch.index for batch in batches] == sorted({batch.index for batch in batches})

    job_events = [event for event in events if event.topic == "Job" and event.type == "JobRegistered"]
    assert job_events, "no Job event typed JobRegistered"
    first_job = job_events[0]
    assert first_job.key == job_id
    assert first_job.index == registered.job_modify_index
    assert not first_job.filter_keys
    assert first_job.namespace == "default"
    assert first_job.object is not None
    assert first_job.object["ID"] == job_id
    assert "Deleted" not in first_job.payload or first_job.payload["Deleted"] is False

    placed = [event for event in events if event.topic == "Allocation" and event.type == "PlanResult"]
    assert len({event.key for event in placed}) == 2
    for event in placed:
        assert event.filter_keys[0] == job_id
        assert event.object is not None
        assert event.object["JobID"] == job_id
        assert "Job" not in event.object  # the server drops an allocation's Job from events
    updated = [event for event in events if event.topic == "Allocation" and event.type == "AllocationUpdated"]
    assert {event.key for event in updated} >= _running_allocs(events)
    assert not [event for event in events if event.type in ("AllocationCreated", "JobEvent")]


async def test_the_register_evaluation_is_typed_job_registered(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("eval-event")
    start = (await nomad.list_jobs()).index
    async with nomad.event_stream({"Evaluation": [job_id]}, after_index=start) as stream:
        registered = await nomad.register_job(sleeper_job(job_id, count=1))
        batches, _ = await _collect(
            stream, target, until=lambda events: any(e.key == registered.eval_id for e in events), what="the eval"
        )
    first = next(event for batch in batches for event in batch.events if event.key == registered.eval_id)
    assert first.type == "JobRegistered"
    assert first.index == registered.job_modify_index  # the same raft index as the job it was created with
    assert list(first.filter_keys) == [job_id, ""]  # JobID, then DeploymentID ("" without a deployment)
    assert first.object is not None
    assert first.object["TriggeredBy"] == "job-register"


async def test_job_and_evaluation_of_one_register_both_reach_the_consumer(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("both")
    start = (await nomad.list_jobs()).index
    async with nomad.event_stream({"Job": [job_id], "Evaluation": [job_id]}, after_index=start) as stream:
        registered = await nomad.register_job(sleeper_job(job_id, count=1))

        def complete(events: list[Event]) -> bool:
            return any(e.topic == "Evaluation" and e.object and e.object["Status"] == "complete" for e in events)

        batches, _ = await _collect(stream, target, until=complete, what="the register evaluation to complete")
    keys = [(event.topic, event.type, event.key) for batch in batches for event in batch.events]
    assert ("Job", "JobRegistered", job_id) in keys
    assert ("Evaluation", "JobRegistered", registered.eval_id) in keys


async def test_resume_from_the_last_index_neither_repeats_nor_skips(target: Target, nomad: NomadClient) -> None:
    job_id = target.job_id("resume")
    start = (await nomad.list_jobs()).index
    topics = _job_topics(job_id)
    async with nomad.event_stream(topics, after_index=start) as reference:
        async with nomad.event_stream(topics, after_index=start) as first:
            await nomad.register_job(sleeper_job(job_id, count=3))
            first_batches, _ = await _collect(
                first, target, until=lambda events: any(e.type == "PlanResult" for e in events), what="a placement"
            )
            handled = first.last_index
        assert handled == first_batches[-1].index
        async with nomad.event_stream(topics, after_index=handled) as resumed:
            second_batches, _ = await _collect(
                resumed, target, until=lambda events: len(_running_allocs(events)) == 3, what="three running"
            )
        last = second_batches[-1].index
        reference_batches, _ = await _collect(
            reference, target, until=lambda events: events[-1].index >= last, what=f"the reference to reach {last}"
        )
    first_indexes = [batch.index for batch in first_batches]
    second_indexes = [batch.index for batch in second_batches]
    assert min(second_indexes) > handled  # nothing handled twice
    assert first_indexes + second_indexes == [batch.index for batch in reference_batches]  # nothing skipped


async def test_a_cut_stream_resets_then_carries_on_without_duplicates(target: Target, nomad: NomadClient) -> None:
    simulator = target.require_simulator("cutting event streams is a fault of the /v1/sim/ API")
    job_id = target.job_id("cut")
    start = (await nomad.list_jobs()).index
    stream = EventStream(nomad, _job_topics(job_id), after_index=start, backoff=FAST_BACKOFF)
    items: list[EventBatch | StreamReset] = []
    events: list[Event] = []
    async with stream, asyncio.timeout(target.poll_deadline):
        await nomad.register_job(sleeper_job(job_id, count=3))
        async for item in stream:
            items.append(item)
            if isinstance(item, EventBatch):
                events.extend(item.events)
                if item.events[0].type == "PlanResult" and stream.reconnects == 0:
                    assert simulator.cluster.cut_streams() >= 1
                if len(_running_allocs(events)) == 3:
                    break
    resets = [position for position, item in enumerate(items) if isinstance(item, StreamReset)]
    assert len(resets) == 1
    reset = items[resets[0]]
    assert isinstance(reset, StreamReset)
    before = [item.index for item in items[: resets[0]] if isinstance(item, EventBatch)]
    after = [item.index for item in items[resets[0] :] if isinstance(item, EventBatch)]
    assert reset.resume_index == before[-1] + 1  # resumes right after the last batch handed over
    assert after
    assert min(after) >= reset.resume_index
    assert before + after == sorted(set(before + after))  # nothing handled twice
    assert stream.reconnects == 1
