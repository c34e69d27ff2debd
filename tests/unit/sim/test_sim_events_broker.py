"""The event broker without HTTP: topic parsing, filters, the 100-batch buffer and resume rules, slow subscribers."""

from __future__ import annotations

import orjson
import pytest

from nomad_operator.sim.events import Event, EventBroker, InvalidTopic, parse_topics


def _job_event(job_id: str, namespace: str = "default") -> Event:
    return Event("Job", job_id, namespace, None, {"Job": {"ID": job_id}})


def _alloc_event(alloc_id: str, job_id: str) -> Event:
    return Event("Allocation", alloc_id, "default", (job_id, ""), {"Allocation": {"ID": alloc_id}})


def test_parse_topics() -> None:
    assert parse_topics([]) == {"*": frozenset({"*"})}
    assert parse_topics(["Job", "Job:web", "Allocation:x"]) == {"Job": frozenset({"*", "web"}),
                                                              "Allocation": frozenset({"x"})}
    for bad in ("Job:a:b", ":x"):
        with pytest.raises(InvalidTopic, match="Invalid topic query"):
            parse_topics([bad])


async def test_batches_are_encoded_with_sorted_keys_and_the_write_type() -> None:
    broker = EventBroker()
    subscription = broker.subscribe(index=0, topics=parse_topics([]), namespace="*")
    broker.publish(index=7, event_type="JobRegistered", events=[_job_event("web")])
    line = await subscription.next_line(timeout=1)
    assert line is not None
    assert line.endswith(b"\n")
    batch = orjson.loads(line)
    assert list(batch) == ["Events", "Index"]
    assert batch["Index"] == 7
    event = batch["Events"][0]
    assert list(event) == sorted(event)
    assert (event["Type"], event["Key"], event["FilterKeys"]) == ("JobRegistered", "web", None)


async def test_key_filter_matches_key_or_filter_keys_exactly() -> None:
    broker = EventBroker()
    subscription = broker.subscribe(index=0, topics=parse_topics(["Allocation:web"]), namespace="default")
    broker.publish(index=2, event_type="PlanResult", events=[_alloc_event("a1", "web"), _alloc_event("a2", "webby")])
    broker.publish(index=3, event_type="PlanResult", events=[_alloc_event("a3", "other")])
    broker.publish(index=4, event_type="PlanResult", events=[_alloc_event("web", "other")])
    lines = [await subscription.next_line(timeout=1) for _ in range(2)]
    keys = [[event["Key"] for event in orjson.loads(line or b"{}")["Events"]] for line in lines]
    assert keys == [["a1"], ["web"]]  # index 3 filtered out entirely: no empty batch is sent
    assert await subscription.next_line(timeout=0.01) is None


async def test_namespace_filter() -> None:
    broker = EventBroker()
    subscription = broker.subscribe(index=0, topics=parse_topics(["Job", "Node"]), namespace="prod")
    broker.publish(index=2, event_type="JobRegistered", events=[_job_event("a", "default"), _job_event("b", "prod")])
    broker.publish(index=3, event_type="NodeRegistration", events=[Event("Node", "n1", "", None, {"Node": {}})])
    first = orjson.loads(await subscription.next_line(timeout=1) or b"{}")
    second = orjson.loads(await subscription.next_line(timeout=1) or b"{}")
    assert [e["Key"] for e in first["Events"]] == ["b"]
    assert [e["Key"] for e in second["Events"]] == ["n1"]


def _indexes(broker: EventBroker, index: int) -> list[int]:
    subscription = broker.subscribe(index=index, topics=parse_topics([]), namespace="*")
    return [orjson.loads(line)["Index"] for line in list(subscription._lines)]


def test_buffer_resume_rules() -> None:
    broker = EventBroker(buffer_size=100)
    for index in range(1, 151):
        broker.publish(index=index, event_type="JobRegistered", events=[_job_event(f"j{index}")])
    assert _indexes(broker, 0)[0] == 51
    assert len(_indexes(broker, 0)) == 100
    assert _indexes(broker, 10)[0] == 51  # older than the buffer: silently the oldest
    assert _indexes(broker, 140) == list(range(140, 151))  # inclusive
    assert _indexes(broker, 500) == [150]  # beyond the newest: the newest again


def test_slow_subscriber_is_dropped_and_closed() -> None:
    broker = EventBroker(max_backlog=3)
    subscription = broker.subscribe(index=0, topics=parse_topics([]), namespace="*")
    for index in range(1, 6):
        broker.publish(index=index, event_type="JobRegistered", events=[_job_event("x")])
    assert subscription.dropped
    assert subscription.closed
    assert broker.subscriber_count == 0


def test_close_all_cuts_every_stream() -> None:
    broker = EventBroker()
    subscriptions = [broker.subscribe(index=0, topics=parse_topics([]), namespace="*") for _ in range(3)]
    assert broker.close_all() == 3
    assert all(subscription.closed for subscription in subscriptions)
