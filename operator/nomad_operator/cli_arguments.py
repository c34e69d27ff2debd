"""Argument types that more than one sub-command parses: Go durations, and whole or decimal numbers within bounds.

`sim` and `demo` take the same kinds of values (heartbeat timings, a deployment time scale, a node count). A value
that parses but cannot work (a node count of 0, a time scale of 2, a TTL of "ten") must be refused on the command
line, as argparse's usage error (exit 2) that names the flag and says what would be accepted, and never later as an
obscure failure inside a child process. One set of parsers keeps those rules and their messages the same in every
command. They live here rather than in `durations`, the Go duration codec the Nomad client builds on, so that the
codec does not import argparse or know about command lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nomad_operator.durations import InvalidDuration, parse_duration, to_seconds


def go_duration(text: str) -> str:
    """A Go duration such as "10s" or "500ms", checked and kept as text (for a flag passed on to a child process)."""
    go_duration_seconds(text)
    return text


def go_duration_seconds(text: str) -> float:
    """A Go duration such as "10s" or "500ms", in seconds."""
    try:
        return to_seconds(parse_duration(text))
    except InvalidDuration as error:
        raise argparse.ArgumentTypeError(f"{error}; use a Go duration such as 10s or 500ms") from None


def whole_number(what: str, *, low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers from `low` (and up to `high`); its error calls the value `what`."""
    accepted = f"of at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}; use a whole number {accepted}")
        return int(text)

    return parse


def decimal_number(what: str, *, low: float, high: float, include_low: bool = True) -> Callable[[str], float]:
    """A parser of numbers in [low, high] (or (low, high] without `include_low`); its error calls the value `what`."""
    accepted = f"{'[' if include_low else '('}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")  # compares false with everything: refused below
        if not ((low <= value if include_low else low < value) and value <= high):
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}; use a number in {accepted}")
        return value

    return parse


def time_scale(text: str) -> float:
    """A factor in (0, 1] that shortens Nomad's timings (deployments) for demos and tests; 1 is Nomad's own."""
    return _TIME_SCALE(text)


_TIME_SCALE = decimal_number("time scale", low=0, high=1, include_low=False)
