"""The reason a placement is blocked, read from Nomad's AllocMetric the way the simulator and Nomad write it."""

from __future__ import annotations

from typing import Any

import pytest

from nomad_operator.controllers.nodes.blocked_reasons import (
    REASON_CONSTRAINT,
    REASON_CPU,
    REASON_DISTINCT_HOSTS,
    REASON_DISTINCT_PROPERTY,
    REASON_MEMORY,
    REASON_NO_NODES,
    REASON_PORT,
    REASON_RESOURCES,
    REASON_UNKNOWN,
    classify_failure,
)


def metric(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ConstraintFiltered": None, "DimensionExhausted": None, "NodesEvaluated": 2, "NodesFiltered": 0,
        "NodesExhausted": 0, "CoalescedFailures": 0, "NodesAvailable": {"dc1": 2},
    }  # fmt: skip
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ConstraintFiltered": {"distinct_hosts": 2}}, REASON_DISTINCT_HOSTS),
        ({"ConstraintFiltered": {"distinct_property: ${meta.rack}=r1 used by 1 allocs": 2}}, REASON_DISTINCT_PROPERTY),
        ({"DimensionExhausted": {"network: reserved port collision lb=9999": 2}}, REASON_PORT),
        ({"DimensionExhausted": {"network: dynamic port selection failed": 1}}, REASON_PORT),
        ({"DimensionExhausted": {"memory": 2}}, REASON_MEMORY),
        ({"DimensionExhausted": {"cpu": 2}}, REASON_CPU),
        ({"DimensionExhausted": {"disk": 2}}, REASON_RESOURCES),
        ({"ConstraintFiltered": {"${attr.cpu.arch} regexp ^(amd64|arm64)$": 2}}, REASON_CONSTRAINT),
        ({"NodesEvaluated": 0}, REASON_NO_NODES),
        ({"NodesEvaluated": 3}, REASON_UNKNOWN),
    ],
)
def test_reason_words(fields: dict[str, Any], reason: str) -> None:
    assert classify_failure(metric(**fields)).reason == reason


def test_the_reason_that_excluded_most_nodes_wins() -> None:
    found = classify_failure(metric(ConstraintFiltered={"distinct_hosts": 1}, DimensionExhausted={"memory": 2}))
    assert found.reason == REASON_MEMORY
    assert found.nodes == 2
    assert "distinct_hosts" in found.message  # the other reason is still mentioned


def test_a_tie_goes_to_the_more_specific_reason() -> None:
    found = classify_failure(metric(ConstraintFiltered={"distinct_hosts": 1}, DimensionExhausted={"memory": 1}))
    assert found.reason == REASON_DISTINCT_HOSTS


def test_message_says_how_many_nodes_and_coalesced_failures() -> None:
    found = classify_failure(metric(ConstraintFiltered={"distinct_hosts": 2}, CoalescedFailures=1))
    assert found.message == "constraint 'distinct_hosts' filtered 2 nodes (1 more placements failed the same way)"


def test_junk_counters_are_ignored_not_fatal() -> None:
    found = classify_failure(metric(ConstraintFiltered={"distinct_hosts": "2", "x": True}, DimensionExhausted=[1]))
    assert found.reason == REASON_UNKNOWN
