"""Evaluated HCL values to the Go types of Nomad's api structs, converting exactly as Nomad's decoder does.

Nomad decodes attributes through cty's conversions, which are lenient in a few set ways ("5" is a number, 5 is a
string, "true" is a bool) and strict in all others (a string is never a list, 1.5 is never an int, 300 is never an
int8). A converter that guesses more or less than that ships a different job than `nomad job run` would, so each
rule here mirrors one of cty's, and every refusal is a `ConversionError` carrying the text that Nomad prints.
Durations take Go strings ("30s") or plain numbers taken as nanoseconds, like jobspec2's duration decoder.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

from nomad_operator.durations import InvalidDuration, parse_duration
from nomad_operator.jobspec.body import Value
from nomad_operator.jobspec.schema import INT_RANGES

_DECIMAL_NUMBER: Final = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_DURATION_UNIT: Final = re.compile(r"[\d.]+([^\d.]+)")
_UNIT_NANOSECONDS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
                             "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip
_KNOWN_UNITS: Final = frozenset(_UNIT_NANOSECONDS)
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

TYPE_NAMES: Final[dict[str, str]] = {
    "s": "string",
    "b": "bool",
    "d": "duration",
    **dict.fromkeys(INT_RANGES, "number"),
}


class ConversionError(ValueError):
    """A value that Nomad's decoder refuses; `summary` and `detail` follow HCL's diagnostics."""

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(f"{summary}; {detail}")
        self.summary = summary
        self.detail = detail


def friendly_type(value: Value) -> str:
    """cty's friendly name for the type of an evaluated value, as used in Nomad's messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "tuple"
    return "object"


def format_number(number: int | float) -> str:
    """A number as cty prints it when converting to string: no exponent, no trailing zeros."""
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        raise ConversionError("Unsuitable value type", "Unsuitable value: number is not finite")
    if number.is_integer():
        return str(int(number))
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_string(value: Value, *, name: str) -> str:
    """cty conversion to string: strings as-is, numbers and bools printed, everything else refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    raise _wrong_type(name, "string required", value)


def to_bool(value: Value, *, name: str) -> bool:
    """cty conversion to bool: bools, and the strings "true" and "false"."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    if isinstance(value, str):
        raise ConversionError(
            "Incorrect attribute value type",
            f'Inappropriate value for attribute "{name}": a bool is required.',
        )
    raise _wrong_type(name, "bool required", value)


def to_number(value: Value, *, name: str) -> int | float:
    """cty conversion to number: numbers, and strings holding a decimal number."""
    if isinstance(value, bool):
        raise _wrong_type(name, "number required", value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        if _DECIMAL_NUMBER.fullmatch(value.strip()) and value == value.strip():
            number = Decimal(value)
            return int(number) if number == number.to_integral_value() else float(number)
        raise ConversionError(
            "Incorrect attribute value type",
            f'Inappropriate value for attribute "{name}": a number is required.',
        )
    raise _wrong_type(name, "number required", value)


def to_int(value: Value, *, name: str, code: str = "i") -> int:
    """A number that fits the Go integer type `code` (see schema.INT_RANGES)."""
    number = to_number(value, name=name)
    low, high = INT_RANGES[code]
    if isinstance(number, float):
        if not number.is_integer():
            raise ConversionError(
                "Unsuitable value type",
                f"Unsuitable value: value must be a whole number, between {low} and {high}",
            )
        number = int(number)
    if not low <= number <= high:
        raise ConversionError(
            "Unsuitable value type",
            f"Unsuitable value: value must be a whole number, between {low} and {high}",
        )
    return number


def to_duration(value: Value, *, name: str) -> int:
    """A Go duration string or a plain number of nanoseconds, as jobspec2's decodeDuration reads it."""
    if isinstance(value, str):
        try:
            parse_duration(value)  # the validation: rejects what Go rejects
        except InvalidDuration:
            raise ConversionError("Unsuitable duration value", go_duration_error(value)) from None
        return _exact_nanoseconds(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_int(value, name=name, code="i64")
    raise ConversionError(
        "Unsuitable value: expected a string but found " + friendly_type(value),
        f'The attribute "{name}" must be a duration string such as "30s", or a number of nanoseconds.',
    )


def _exact_nanoseconds(text: str) -> int:
    """A valid Go duration in integer arithmetic, as Go computes it (floats lose nanoseconds above 2**53)."""
    sign = -1 if text.startswith("-") else 1
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(text.lstrip("+-")):
        total += Decimal(number) * _UNIT_NANOSECONDS[unit]
    return sign * int(total)


def go_duration_error(text: str) -> str:
    """The text of the error Go's time.ParseDuration returns for `text`."""
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    body = text.lstrip("+-")
    if body and all(ch.isdigit() for ch in body):
        return f"time: missing unit in duration {quoted}"
    for unit in _DURATION_UNIT.findall(body):
        if unit not in _KNOWN_UNITS:
            return f'time: unknown unit "{unit}" in duration {quoted}'
    return f"time: invalid duration {quoted}"


def to_scalar(value: Value, *, name: str, code: str) -> Value:
    """Convert to one scalar field type of the field table."""
    if code == "s":
        return to_string(value, name=name)
    if code == "b":
        return to_bool(value, name=name)
    if code == "d":
        return to_duration(value, name=name)
    if code in INT_RANGES:
        return to_int(value, name=name, code=code)
    raise ConversionError("Unsupported argument", f'The attribute "{name}" cannot be set from a job file.')


def to_list(value: Value, *, name: str, element: str) -> list[Value]:
    """A list (or tuple) whose elements each convert to `element`."""
    if not isinstance(value, list):
        raise _wrong_type(name, f"list of {TYPE_NAMES[element]} required", value)
    return [to_scalar(item, name=name, code=element) for item in value]


def to_string_map(value: Value, *, name: str) -> dict[str, Value]:
    """A map of strings with its keys sorted, as Go's encoder prints a map[string]string."""
    if not isinstance(value, dict):
        raise _wrong_type(name, "map of string required", value)
    return {key: to_string(value[key], name=f"{name}.{key}") for key in sorted(value)}


def to_string_list_map(value: Value, *, name: str) -> dict[str, Value]:
    """A map of string lists (check headers), keys sorted."""
    if not isinstance(value, dict):
        raise _wrong_type(name, "map of list of string required", value)
    return {key: to_list(value[key], name=f"{name}.{key}", element="s") for key in sorted(value)}


def free_value(value: Value) -> Value:
    """A value of a free-form map (driver config): whole numbers become ints, nested maps sort their keys."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [free_value(item) for item in value]
    if isinstance(value, dict):
        return {key: free_value(value[key]) for key in sorted(value)}
    return value


def _wrong_type(name: str, what: str, value: Value) -> ConversionError:
    if value is None:
        return ConversionError("Unsuitable value type", f'Unsuitable value for "{name}": null value is not allowed')
    return ConversionError(
        "Incorrect attribute value type",
        f'Inappropriate value for attribute "{name}": {what}.',
    )
