import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.durations import (
    HOUR,
    MILLISECOND,
    MINUTE,
    SECOND,
    InvalidDuration,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("10s", 10 * SECOND),
        ("1m30s", 90 * SECOND),
        ("1h", HOUR),
        ("250ms", 250 * MILLISECOND),
        ("1.5s", 1500 * MILLISECOND),
        ("-5m", -5 * MINUTE),
        ("300us", 300_000),
        ("7ns", 7),
    ],
)
def test_parse_duration_accepts_go_forms(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1 s", "1s ", "--1s", "+"])
def test_parse_duration_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(InvalidDuration):
        parse_duration(text)


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [(0, "0s"), (15 * SECOND, "15s"), (HOUR, "1h0m0s"), (90 * SECOND, "1m30s"), (1500 * MILLISECOND, "1.5s"),
     (250 * MILLISECOND, "250ms"), (7, "7ns")],
)
def test_format_duration_matches_go(nanoseconds: int, expected: str) -> None:
    assert format_duration(nanoseconds) == expected


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_format_then_parse_round_trips(nanoseconds: int) -> None:
    assert parse_duration(format_duration(nanoseconds)) == nanoseconds


def test_parse_duration_is_exact_beyond_float_precision() -> None:
    assert parse_duration("1ns2502h") == 2502 * HOUR + 1
    assert parse_duration("2562047h47m16.854775807s") == 2**63 - 1


def test_parse_duration_rejects_overflow() -> None:
    with pytest.raises(InvalidDuration):
        parse_duration("2562048h")
