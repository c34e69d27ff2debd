import argparse

import pytest

from nomad_operator.cli_arguments import decimal_number, go_duration, go_duration_seconds, time_scale, whole_number


def test_go_durations_are_checked_and_converted() -> None:
    assert go_duration("1m30s") == "1m30s"
    assert go_duration_seconds("250ms") == pytest.approx(0.25)
    with pytest.raises(argparse.ArgumentTypeError, match="Go duration"):
        go_duration("10")


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "11"])
def test_whole_numbers_outside_the_range_are_refused(text: str) -> None:
    parse = whole_number("node count", low=1, high=10)
    with pytest.raises(argparse.ArgumentTypeError, match="invalid node count"):
        parse(text)


def test_whole_numbers_inside_the_range_are_taken() -> None:
    assert whole_number("node count", low=1, high=10)("10") == 10
    assert whole_number("port", low=0)("65535") == 65535


@pytest.mark.parametrize(("text", "accepted"), [("0", False), ("0.2", True), ("1", True), ("1.01", False),
                                                 ("nan", False), ("x", False)])
def test_time_scale_is_a_factor_in_zero_to_one(text: str, accepted: bool) -> None:
    if accepted:
        assert time_scale(text) == float(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"\(0, 1\]"):
            time_scale(text)


def test_decimal_number_with_an_inclusive_low_bound() -> None:
    parse = decimal_number("refresh", low=0.1, high=5.0)
    assert parse("0.1") == pytest.approx(0.1)
    with pytest.raises(argparse.ArgumentTypeError, match=r"\[0.1, 5\]"):
        parse("0.05")
