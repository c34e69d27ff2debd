"""Conditions: transitions, transition times, consistency of Ready / Reconciling / Stalled, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nomad_operator.runtime.conditions import (
    MESSAGE_MAX_LENGTH,
    READY,
    RECONCILING,
    STALLED,
    Condition,
    ConditionStatus,
    conditions_from_status,
    conditions_to_status,
    find_condition,
    is_ready,
    is_true,
    mark_failed,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    set_condition,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)


def statuses(conditions: tuple[Condition, ...]) -> dict[str, str]:
    return {condition.type: str(condition.status) for condition in conditions}


def test_transition_time_changes_only_when_the_status_does() -> None:
    first = mark_ready((), message="applied 3 jobs", observed_generation=1, now=T0)
    again = mark_ready(first, reason="Applied", message="applied 4 jobs", observed_generation=2, now=T1)
    ready = find_condition(again, READY)
    assert ready is not None
    assert ready.last_transition_time == "2024-05-01T12:00:00Z", "still True: the time of the flip is kept"
    assert ready.message == "applied 4 jobs"
    assert ready.reason == "Applied"
    assert ready.observed_generation == 2
    failed = mark_failed(again, reason="FetchFailed", message="git unreachable", observed_generation=2, now=T2)
    assert find_condition(failed, READY).last_transition_time == "2024-05-01T12:02:00Z"  # type: ignore[union-attr]


def test_the_mark_helpers_keep_the_three_conditions_consistent() -> None:
    conditions = mark_reconciling((), reason="Progressing", message="fetching", observed_generation=1, now=T0)
    assert statuses(conditions) == {RECONCILING: "True", READY: "Unknown"}
    conditions = mark_failed(conditions, reason="FetchFailed", message="timeout", observed_generation=1, now=T0)
    assert statuses(conditions) == {RECONCILING: "True", READY: "False"}
    conditions = mark_stalled(conditions, reason="InvalidSpec", message="bad url", observed_generation=1, now=T0)
    assert statuses(conditions) == {STALLED: "True", READY: "False"}
    conditions = mark_reconciling(conditions, reason="Progressing", message="new spec", observed_generation=2, now=T1)
    assert statuses(conditions) == {RECONCILING: "True", READY: "Unknown"}
    conditions = mark_ready(conditions, message="done", observed_generation=2, now=T1)
    assert statuses(conditions) == {READY: "True"}
    assert is_ready(conditions)
    assert is_ready(conditions, generation=2)
    assert not is_ready(conditions, generation=3), "a Ready of an older spec is not ready"
    assert not is_true(conditions, STALLED)


def test_other_conditions_keep_their_place() -> None:
    conditions = set_condition(
        (),
        condition_type="Healthy",
        status=ConditionStatus.TRUE,
        reason="AllRunning",
        message="",
        observed_generation=1,
        now=T0,
    )
    conditions = mark_ready(conditions, message="ok", observed_generation=1, now=T0)
    conditions = set_condition(
        conditions,
        condition_type="Healthy",
        status=ConditionStatus.FALSE,
        reason="Lost",
        message="",
        observed_generation=1,
        now=T1,
    )
    assert [condition.type for condition in conditions] == ["Healthy", READY]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reason": "not camel"}, "reason must be a CamelCase word"),
        ({"reason": ""}, "reason must be a CamelCase word"),
        ({"condition_type": "ready"}, "type must be a CamelCase word"),
        ({"observed_generation": -1}, "observedGeneration must be >= 0"),
        ({"now": datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_condition_input_is_refused(arguments: dict[str, Any], message: str) -> None:
    call: dict[str, Any] = {
        "condition_type": READY,
        "status": ConditionStatus.TRUE,
        "reason": "Succeeded",
        "message": "",
        "observed_generation": 1,
        "now": T0,
    }
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        set_condition((), **call)


def test_long_messages_are_cut() -> None:
    conditions = mark_ready((), message="x" * (MESSAGE_MAX_LENGTH * 2), observed_generation=1, now=T0)
    assert len(conditions[0].message) == MESSAGE_MAX_LENGTH
    assert conditions[0].message.endswith("…")


def test_conditions_round_trip_through_a_status_document() -> None:
    conditions = mark_stalled((), reason="InvalidSpec", message="bad", observed_generation=4, now=T0)
    status = {"conditions": conditions_to_status(conditions)}
    assert status["conditions"][0] == {
        "type": STALLED,
        "status": "True",
        "reason": "InvalidSpec",
        "message": "bad",
        "lastTransitionTime": "2024-05-01T12:00:00Z",
        "observedGeneration": 4,
    }
    assert conditions_from_status(status) == conditions
    assert conditions_from_status(None) == ()
    assert conditions_from_status({"revision": "x"}) == ()


def test_bad_conditions_in_a_status_document_name_every_problem() -> None:
    bad = {
        "type": "ready",
        "status": "Yes",
        "reason": "ok then",
        "lastTransitionTime": "noon",
        "observedGeneration": -2,
    }
    with pytest.raises(ValueError, match="invalid condition") as caught:
        conditions_from_status({"conditions": [bad]})
    text = str(caught.value)
    for part in [
        "type must be",
        "status must be True, False or Unknown",
        "reason must be",
        "RFC 3339",
        "observedGeneration",
    ]:
        assert part in text
    with pytest.raises(ValueError, match="must be a list"):
        conditions_from_status({"conditions": {"type": READY}})
