"""Go-style durations ("1h30m", "10s", "250ms"), the way Nomad reads and writes them.

Nomad's JSON carries durations as integer nanoseconds, while job files, flags and variable-lock TTLs use Go's
duration strings. Every layer needs the conversion, so it lives here, below all of them, importing nothing of ours.
"""

from __future__ import annotations

import re

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign, as Go accepts
    "μs": MICROSECOND,  # U+03BC greek mu, as Go accepts
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX_DURATION = 2**63 - 1  # Go's time.Duration is an int64
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class InvalidDuration(ValueError):
    """A string that Go's time.ParseDuration would reject."""


def parse_duration(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds, rejecting what Go rejects.

    >>> parse_duration("1m30s")
    90000000000
    """
    original = text
    if not text:
        raise InvalidDuration('invalid duration ""')
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise InvalidDuration(f"invalid duration {original!r}")
    # Exact integer arithmetic, as Go does: floats lose nanoseconds above 2**53 ns (about 104 days).
    total = 0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise InvalidDuration(f"invalid duration {original!r}")
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        position = match.end()
    if total > _MAX_DURATION:
        raise InvalidDuration(f"invalid duration {original!r}: out of range")
    return sign * total


def format_duration(nanoseconds: int) -> str:
    """Format nanoseconds the way Go's Duration.String does ("1h0m0s", "1.5s", "250ms", "0s")."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < SECOND:
        for unit, size in (("ms", MILLISECOND), ("µs", MICROSECOND)):
            if value >= size:
                return f"{sign}{_trim(value / size)}{unit}"
        return f"{sign}{value}ns"
    hours, rest = divmod(value, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds = _trim(rest / SECOND)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(number: float) -> str:
    text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def to_seconds(nanoseconds: int) -> float:
    """Nanoseconds as float seconds, for asyncio timeouts."""
    return nanoseconds / SECOND
