"""Nomad's wire encoding: sorted keys, all-omitempty objects, and complete key sets for everything else.

Nomad encodes responses with its own msgpack-derived JSON handle, not Go's encoding/json: struct keys come out sorted,
a handful of objects (Allocation, Evaluation, NetworkResource, Port, AllocatedPortMapping) drop every empty field, and
every other object always carries all of its keys, zero-valued when unset. A client that decodes into typed structs
notices a missing key as surely as a wrong one, so the simulator must never emit a partial object. The hazard handled
here is exactly that: `fill` completes an object (recursively, through its nested objects) from the key tables in
`wire_shapes.json`, which were transcribed from the project reference of Nomad's structs; `drop_empty` applies the
omitempty rule; `dumps` sorts keys the way Nomad's encoder does.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import orjson

_DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class UnknownShape(KeyError):
    """An object name that has no entry in the wire-shape table."""


@cache
def _shapes() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("wire_shapes.json").read_text(encoding="utf-8")
    shapes: dict[str, Any] = json.loads(text)["objects"]
    return shapes


def _shape(name: str) -> dict[str, Any]:
    try:
        shape: dict[str, Any] = _shapes()[name]
    except KeyError:
        raise UnknownShape(name) from None
    return shape


def keys_of(name: str) -> tuple[str, ...]:
    """Every key an object of this type may carry on the wire."""
    return tuple(_shape(name)["keys"])


def blank(name: str) -> dict[str, Any]:
    """A zero-valued object of this type as Nomad encodes it (omitempty keys left out)."""
    shape = _shape(name)
    omit = set(shape["omit"])
    return {key: copy.deepcopy(zero) for key, zero in shape["keys"].items() if key not in omit}


def fill(name: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Complete ``value`` with every missing key of ``name`` (zero-valued), recursing into known nested objects.

    Keys the shape does not know are kept: Nomad would drop them, but jobs from newer clients carry fields that a
    test may want to read back, and dropping data silently is the worse failure.
    """
    if value is None:
        return None
    shape = _shape(name)
    omit = set(shape["omit"])
    result: dict[str, Any] = {}
    for key, zero in shape["keys"].items():
        if key in value:
            result[key] = _fill_ref(shape["refs"].get(key), value[key])
        elif key not in omit:
            result[key] = copy.deepcopy(zero)
    for key, item in value.items():
        if key not in result:
            result[key] = item
    if shape["all_omit"]:
        return drop_empty(result)
    return result


def _fill_ref(ref: list[str] | None, value: Any) -> Any:
    if ref is None or value is None:
        return value
    kind, name = ref
    if name not in _shapes():
        return value
    if kind == "array" and isinstance(value, list):
        return [fill(name, item) if isinstance(item, dict) else item for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: fill(name, item) if isinstance(item, dict) else item for key, item in value.items()}
    if kind == "object" and isinstance(value, dict):
        return fill(name, value)
    return value


def _is_empty(value: Any) -> bool:
    if value is None or value is False or value == 0 or value == "":
        return value is not True
    if isinstance(value, dict | list):
        return len(value) == 0
    return False


def drop_empty(value: dict[str, Any]) -> dict[str, Any]:
    """Nomad's omitempty: leave out "", 0, false, null and empty lists and maps (top level only)."""
    return {key: item for key, item in value.items() if not _is_empty(item)}


def dumps(value: Any) -> bytes:
    """Encode like Nomad's JSON handle: keys sorted (struct keys are; map keys may be in any order anyway)."""
    return orjson.dumps(value, option=_DUMP_OPTIONS)


def dumps_pretty(value: Any) -> bytes:
    """`?pretty`: four-space indent and a trailing newline, as Nomad writes it (orjson only indents by two)."""
    return (json.dumps(value, indent=4, sort_keys=True) + "\n").encode()


def struct_form(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` (an object of type ``name`` in the api package's form) as the server's structs hold it: a field that
    is a plain Go value there (a string, number or bool, never a pointer) cannot be null, so a null becomes its zero;
    a null under a key the struct does not have is dropped (it carries nothing). Recurses into known nested objects;
    ``value`` is changed in place and returned.
    """
    shape = _shape(name)
    zeros = shape["keys"]
    for key in list(value):
        item = value[key]
        if key not in zeros:
            if item is None:
                del value[key]
            continue
        if item is None:
            zero = zeros[key]
            if zero is not None and not isinstance(zero, dict | list):
                value[key] = zero
            continue
        ref = shape["refs"].get(key)
        if ref is None or ref[1] not in _shapes():
            continue
        kind, nested = ref
        if kind == "object" and isinstance(item, dict):
            struct_form(nested, item)
        elif kind == "array" and isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    struct_form(nested, element)
        elif kind == "map" and isinstance(item, dict):
            for element in item.values():
                if isinstance(element, dict):
                    struct_form(nested, element)
    return value
