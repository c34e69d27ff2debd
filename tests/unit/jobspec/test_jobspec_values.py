"""Value conversions as Nomad's decoder does them, Go-style JSON output, and field-level job differences."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.durations import format_duration
from nomad_operator.jobspec.field_diff import ABSENT, field_differences
from nomad_operator.jobspec.go_json import canonical_json, go_json
from nomad_operator.jobspec.value_conversion import (
    ConversionError,
    format_number,
    go_duration_error,
    to_bool,
    to_duration,
    to_int,
    to_list,
    to_string,
)

UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from(sorted(UNITS))), min_size=1))
def test_duration_strings_sum_their_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{number}{unit}" for number, unit in parts)
    assert to_duration(text, name="d") == sum(number * UNITS[unit] for number, unit in parts)


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_round_trips_through_go_formatting(nanoseconds: int) -> None:
    assert to_duration(format_duration(nanoseconds), name="d") == nanoseconds


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_plain_numbers_are_nanoseconds(number: int) -> None:
    assert to_duration(number, name="d") == number


@given(st.text(alphabet="abcdxyz", min_size=1, max_size=4), st.integers(min_value=1, max_value=99))
def test_unknown_units_are_named(unit: str, number: int) -> None:
    if unit in UNITS:
        return
    with pytest.raises(ConversionError) as caught:
        to_duration(f"{number}{unit}", name="d")
    assert caught.value.summary == "Unsuitable duration value"
    assert caught.value.detail == go_duration_error(f"{number}{unit}")
    assert "unknown unit" in caught.value.detail or "invalid duration" in caught.value.detail


@pytest.mark.parametrize("value", [True, None, ["1s"], {"a": 1}])
def test_durations_refuse_other_types(value: object) -> None:
    with pytest.raises(ConversionError):
        to_duration(value, name="kill_timeout")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"), [(5, "5"), (1.5, "1.5"), (2.0, "2"), (True, "true"), ("x", "x"), (1e20, "100000000000000000000")]
)
def test_to_string_prints_like_cty(value: object, text: str) -> None:
    assert to_string(value, name="a") == text  # type: ignore[arg-type]


def test_lenient_numbers_and_bools() -> None:
    assert to_int("42", name="count") == 42
    assert to_int(3.0, name="count") == 3
    assert to_bool("true", name="leader") is True
    assert format_number(0.1) == "0.1"


@pytest.mark.parametrize(
    ("call", "detail"),
    [
        (lambda: to_int("many", name="count"), 'Inappropriate value for attribute "count": a number is required.'),
        (lambda: to_int(1.5, name="count"), "Unsuitable value: value must be a whole number, between"),
        (lambda: to_int(256, name="p", code="u8"), "Unsuitable value: value must be a whole number, between 0 and 255"),
        (lambda: to_bool("yes", name="leader"), 'Inappropriate value for attribute "leader": a bool is required.'),
        (lambda: to_string(["a"], name="driver"), 'Inappropriate value for attribute "driver": string required.'),
        (
            lambda: to_list("a", name="tags", element="s"),
            'Inappropriate value for attribute "tags": list of string required.',
        ),
    ],
)
def test_refusals_carry_nomads_text(call: object, detail: str) -> None:
    with pytest.raises(ConversionError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.detail.startswith(detail)


def test_go_json_escapes_like_go_and_keeps_order() -> None:
    text = go_json({"b": "<a&b>", "a": "é\u2028"})
    assert text == '{\n    "b": "\\u003ca\\u0026b\\u003e",\n    "a": "é\\u2028"\n}'
    assert json.loads(text) == {"b": "<a&b>", "a": "é\u2028"}


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": None}) == '{"a":null,"b":[1,{"c":2,"d":1}]}'


def test_field_differences_name_each_path() -> None:
    ours = {"ID": "a", "TaskGroups": [{"Count": 1, "Meta": {"x": "1"}}], "Extra": 1}
    theirs = {"ID": "a", "TaskGroups": [{"Count": 2.0, "Meta": {"x": "1", "y": "2"}}, {}]}
    differences = [str(d) for d in field_differences(ours, theirs)]
    assert differences == [
        "Job.TaskGroups[0].Count: ours 1, Nomad 2.0",
        f'Job.TaskGroups[0].Meta.y: ours {ABSENT}, Nomad "2"',
        f"Job.TaskGroups[1]: ours {ABSENT}, Nomad {{}}",
        f"Job.Extra: ours 1, Nomad {ABSENT}",
    ]
    assert field_differences({"Count": 1}, {"Count": 1.0}) == []
    assert field_differences({"Flag": True}, {"Flag": 1}) != []
