"""HCL's value types and conversions, as cty does them, on plain Python values.

Why: Nomad converts values by type in many places we must match: a `-var` string becomes a number for a `number`
variable, `"5" + 1` is 6, `true ? 1 : "a"` is the string "1", a `list(string)` variable turns `[1, 2]` into
`["1", "2"]`. Getting one of these wrong changes a job silently, so the rules live here in one place.

Values are plain Python: str, int/float (whole numbers are always int, as Nomad's decoder hands out ints), bool,
None for null, list for lists/tuples/sets, dict for maps/objects. The hazard this module handles: Python's
`True == 1` and `1 == 1.0`-style equality is not HCL's; `values_equal` compares with types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

Value: TypeAlias = Any  # str | int | float | bool | list[Value] | dict[str, Value] | None


class ConversionError(ValueError):
    """A value does not fit a type; the message says which and why."""


@dataclass(frozen=True, slots=True)
class HclType:
    """A cty type: a primitive ("string", "number", "bool"), "any", or a collection/structural kind."""

    kind: str  # string | number | bool | any | list | set | map | object | tuple
    element: HclType | None = None
    attributes: tuple[tuple[str, HclType], ...] = field(default=())
    elements: tuple[HclType, ...] = field(default=())

    def __str__(self) -> str:
        if self.kind in ("list", "set", "map"):
            return f"{self.kind}({self.element})"
        if self.kind == "object":
            return "object({" + ", ".join(f"{name}={kind}" for name, kind in self.attributes) + "})"
        if self.kind == "tuple":
            return "tuple([" + ", ".join(str(kind) for kind in self.elements) + "])"
        return self.kind


STRING = HclType("string")
NUMBER = HclType("number")
BOOL = HclType("bool")
ANY = HclType("any")
PRIMITIVES: dict[str, HclType] = {"string": STRING, "number": NUMBER, "bool": BOOL, "any": ANY}


def list_of(element: HclType) -> HclType:
    return HclType("list", element)


def set_of(element: HclType) -> HclType:
    return HclType("set", element)


def map_of(element: HclType) -> HclType:
    return HclType("map", element)


def object_of(attributes: dict[str, HclType]) -> HclType:
    return HclType("object", attributes=tuple(sorted(attributes.items())))


def tuple_of(elements: list[HclType]) -> HclType:
    return HclType("tuple", elements=tuple(elements))


def is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalize_number(value: int | float) -> int | float:
    """Whole numbers as int (Nomad's decoder does the same), everything else float."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return value


def number_to_string(value: int | float) -> str:
    """A number as cty writes it: no exponent, no trailing zeros (1e3 -> "1000", 0.5 -> "0.5")."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def parse_number(text: str) -> int | float:
    """A string as a number the way cty converts one; raises ConversionError otherwise."""
    candidate = text.strip() if text != text.strip() else text
    if candidate != text or not candidate:
        raise ConversionError(f"a number is required, but {text!r} is not one")
    try:
        if all(char.isdigit() for char in candidate.lstrip("-+")) and candidate.lstrip("-+"):
            return int(candidate)
        number = float(candidate)
    except ValueError:
        raise ConversionError(f"a number is required, but {text!r} is not one") from None
    if math.isnan(number) or candidate.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        raise ConversionError(f"a number is required, but {text!r} is not one")
    return normalize_number(number)


def type_name(value: Value) -> str:
    """The friendly cty name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "tuple"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def type_of(value: Value) -> HclType:
    """The type cty infers for a literal value (tuples and objects, as for a `variables {}` default)."""
    if value is None:
        return ANY
    if isinstance(value, bool):
        return BOOL
    if is_number(value):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return tuple_of([type_of(item) for item in value])
    if isinstance(value, dict):
        return object_of({key: type_of(item) for key, item in value.items()})
    raise ConversionError(f"unsupported value {value!r}")


def values_equal(left: Value, right: Value) -> bool:
    """HCL's `==`: equal types and equal values (so 1 != "1" and true != 1)."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) or is_number(right):
        return is_number(left) and is_number(right) and left == right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(values_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(values_equal(left[key], right[key]) for key in left)
    return False


def to_string(value: Value) -> str:
    """Convert a primitive to a string (numbers and bools as cty writes them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return number_to_string(value)
    if value is None:
        raise ConversionError("a string is required, but the value is null")
    raise ConversionError(f"a string is required, but got {type_name(value)}")


def to_number(value: Value) -> int | float:
    if is_number(value):
        return normalize_number(value)
    if isinstance(value, str):
        return parse_number(value)
    if value is None:
        raise ConversionError("a number is required, but the value is null")
    raise ConversionError(f"a number is required, but got {type_name(value)}")


def to_bool(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    if value is None:
        raise ConversionError("a bool is required, but the value is null")
    raise ConversionError(
        f"a bool is required, but got {type_name(value) if not isinstance(value, str) else repr(value)}"
    )


def convert(value: Value, target: HclType) -> Value:
    """Convert a value to a type as cty's convert does; null converts to every type and stays null."""
    if value is None:
        return None
    kind = target.kind
    if kind == "any":
        return value
    if kind == "string":
        return to_string(value)
    if kind == "number":
        return to_number(value)
    if kind == "bool":
        return to_bool(value)
    if kind in ("list", "set"):
        if not isinstance(value, list):
            raise ConversionError(f"a {kind} is required, but got {type_name(value)}")
        element = target.element or ANY
        items = [_convert_at(item, element, f"[{index}]") for index, item in enumerate(value)]
        if element.kind == "any":
            items = unify(items)
        return _as_set(items) if kind == "set" else items
    if kind == "map":
        if not isinstance(value, dict):
            raise ConversionError(f"a map is required, but got {type_name(value)}")
        element = target.element or ANY
        converted = {key: _convert_at(item, element, f"[{key!r}]") for key, item in value.items()}
        if element.kind == "any":
            converted = dict(zip(converted.keys(), unify(list(converted.values())), strict=True))
        return converted
    if kind == "object":
        if not isinstance(value, dict):
            raise ConversionError(f"an object is required, but got {type_name(value)}")
        result: dict[str, Value] = {}
        for name, attribute_type in target.attributes:
            if name not in value:
                raise ConversionError(f'attribute "{name}" is required')
            result[name] = _convert_at(value[name], attribute_type, f".{name}")
        return result
    if kind == "tuple":
        if not isinstance(value, list):
            raise ConversionError(f"a tuple is required, but got {type_name(value)}")
        if len(value) != len(target.elements):
            raise ConversionError(f"a tuple of {len(target.elements)} elements is required, but got {len(value)}")
        return [
            _convert_at(item, kind_, f"[{i}]")
            for i, (item, kind_) in enumerate(zip(value, target.elements, strict=True))
        ]
    raise ConversionError(f"unknown type {target}")


def _convert_at(value: Value, target: HclType, where: str) -> Value:
    try:
        return convert(value, target)
    except ConversionError as exc:
        message = str(exc)
        if message.startswith("element "):
            message = message.removeprefix("element ")
            raise ConversionError(f"element {where}{message}") from None
        raise ConversionError(f"element {where}: {message}") from None


def unify(items: list[Value]) -> list[Value]:
    """Give the elements of a `list(any)` one type, as cty does: mixed primitives with a string become strings."""
    kinds = {type_name(item) for item in items if item is not None}
    if len(kinds) <= 1:
        return items
    if kinds <= {"string", "number", "bool"}:
        if "string" in kinds:
            return [None if item is None else to_string(item) for item in items]
        raise ConversionError("all elements must have the same type (number and bool cannot be mixed)")
    if kinds <= {"tuple"} or kinds <= {"object"}:
        return items
    raise ConversionError(f"all elements must have the same type, but found {', '.join(sorted(kinds))}")


def _as_set(items: list[Value]) -> list[Value]:
    """A set as a list: duplicates removed, in cty's order (strings and numbers sorted)."""
    unique: list[Value] = []
    for item in items:
        if not any(values_equal(item, seen) for seen in unique):
            unique.append(item)
    if all(isinstance(item, str) for item in unique) or all(is_number(item) for item in unique):
        unique.sort()
    return unique


def as_set(items: list[Value]) -> list[Value]:
    """Public form of the set normalisation, for the set functions."""
    return _as_set(list(items))


def iteration_pairs(collection: Value) -> list[tuple[Value, Value]]:
    """(key, value) pairs of a `for` collection: list indexes in order, map keys in lexical order as cty iterates."""
    if isinstance(collection, list):
        return list(enumerate(collection))
    if isinstance(collection, dict):
        return [(key, collection[key]) for key in sorted(collection)]
    if collection is None:
        raise ConversionError("a null value cannot be iterated")
    raise ConversionError(f"a list, set, map or object is required, but got {type_name(collection)}")
