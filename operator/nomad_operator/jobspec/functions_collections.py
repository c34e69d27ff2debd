"""Nomad's HCL2 collection functions (cty stdlib): lists, maps and sets on plain Python values.

Why separate: these are the functions whose cty semantics surprise (maps iterate in key order, `element` wraps
around, `reverse` reverses a string in Nomad because jobspec2 binds it to cty's string ReverseFunc, sets come out
sorted). Each one here follows cty, not Python, so a job renders as Nomad renders it.
"""

from __future__ import annotations

import itertools

from nomad_operator.jobspec.function_support import (
    LibraryFunction,
    arg_int,
    arg_list,
    arg_map,
    arg_not_null,
    arg_number,
    arg_string,
    arg_strings,
    function,
)
from nomad_operator.jobspec.hcl_types import Value, as_set, normalize_number, to_string, values_equal
from nomad_operator.jobspec.scope import FunctionError

# cty refuses range() results longer than this.
RANGE_LIMIT = 1024


@function("chunklist", 2)
def _chunklist(args: list[Value]) -> Value:
    items, size = arg_list(args, 0), arg_int(args, 1)
    if size < 0:
        raise FunctionError("the chunk size must not be negative", argument=1)
    if size == 0:
        return [list(items)]
    return [items[start : start + size] for start in range(0, len(items), size)]


@function("coalesce", 1, None)
def _coalesce(args: list[Value]) -> Value:
    present = [value for value in args if value is not None]
    if not present:
        raise FunctionError("no non-null arguments")
    first = present[0]
    if not isinstance(first, str) and any(isinstance(value, str) for value in present):
        return to_string(first)
    return first


@function("coalescelist", 1, None)
def _coalescelist(args: list[Value]) -> Value:
    for index in range(len(args)):
        if args[index] is None:
            continue
        items = arg_list(args, index)
        if items:
            return items
    raise FunctionError("no non-null arguments")


@function("compact", 1)
def _compact(args: list[Value]) -> Value:
    return [item for item in arg_list(args, 0) if item is not None and to_string(item) != ""]


@function("concat", 1, None)
def _concat(args: list[Value]) -> Value:
    return [item for index in range(len(args)) for item in arg_list(args, index)]


@function("contains", 2)
def _contains(args: list[Value]) -> Value:
    return any(values_equal(item, args[1]) for item in arg_list(args, 0))


@function("distinct", 1)
def _distinct(args: list[Value]) -> Value:
    unique: list[Value] = []
    for item in arg_list(args, 0):
        if not any(values_equal(item, seen) for seen in unique):
            unique.append(item)
    return unique


@function("element", 2)
def _element(args: list[Value]) -> Value:
    items, index = arg_list(args, 0), arg_int(args, 1)
    if not items:
        raise FunctionError("cannot use element function with an empty list", argument=0)
    if index < 0:
        raise FunctionError("cannot use element function with a negative index", argument=1)
    return items[index % len(items)]


@function("flatten", 1)
def _flatten(args: list[Value]) -> Value:
    def walk(items: list[Value]) -> list[Value]:
        out: list[Value] = []
        for item in items:
            out.extend(walk(item) if isinstance(item, list) else [item])
        return out

    return walk(arg_list(args, 0))


@function("index", 2)
def _index(args: list[Value]) -> Value:
    for position, item in enumerate(arg_list(args, 0)):
        if values_equal(item, args[1]):
            return position
    raise FunctionError("item not found", argument=1)


@function("keys", 1)
def _keys(args: list[Value]) -> Value:
    return sorted(arg_map(args, 0))


@function("values", 1)
def _values(args: list[Value]) -> Value:
    mapping = arg_map(args, 0)
    return [mapping[key] for key in sorted(mapping)]


@function("length", 1)
def _length(args: list[Value]) -> Value:
    value = arg_not_null(args, 0)
    if isinstance(value, list | dict | str):
        return len(value)
    raise FunctionError("argument 1 must be a string, list, map or object", argument=0)


@function("lookup", 2, 3)
def _lookup(args: list[Value]) -> Value:
    mapping, key = arg_map(args, 0), arg_string(args, 1)
    if key in mapping:
        return mapping[key]
    if len(args) == 3:
        return args[2]
    raise FunctionError(f'lookup failed to find key "{key}"', argument=1)


@function("merge", 0, None)
def _merge(args: list[Value]) -> Value:
    merged: dict[str, Value] = {}
    for index, value in enumerate(args):
        if value is None:
            continue
        merged.update(arg_map(args, index))
    return merged


@function("range", 1, 3)
def _range(args: list[Value]) -> Value:
    numbers = [arg_number(args, index) for index in range(len(args))]
    start: int | float = 0 if len(numbers) == 1 else numbers[0]
    end = numbers[0] if len(numbers) == 1 else numbers[1]
    step: int | float = numbers[2] if len(numbers) == 3 else 1
    if step == 0:
        raise FunctionError("the step must not be zero", argument=2)
    if (step > 0 and start > end) or (step < 0 and start < end):
        raise FunctionError("the step must move from start towards end", argument=len(args) - 1)
    out: list[Value] = []
    current = start
    while (current < end) if step > 0 else (current > end):
        if len(out) >= RANGE_LIMIT:
            raise FunctionError(f"more than {RANGE_LIMIT} values would be produced")
        out.append(normalize_number(current))
        current += step
    return out


@function("setintersection", 1, None)
def _setintersection(args: list[Value]) -> Value:
    sets = [as_set(arg_list(args, index)) for index in range(len(args))]
    first, rest = sets[0], sets[1:]
    return as_set([item for item in first if all(any(values_equal(item, other) for other in s) for s in rest)])


@function("setunion", 1, None)
def _setunion(args: list[Value]) -> Value:
    return as_set([item for index in range(len(args)) for item in arg_list(args, index)])


@function("setproduct", 2, None)
def _setproduct(args: list[Value]) -> Value:
    sets = [as_set(arg_list(args, index)) for index in range(len(args))]
    return [list(combination) for combination in itertools.product(*sets)]


@function("slice", 3)
def _slice(args: list[Value]) -> Value:
    items, start, end = arg_list(args, 0), arg_int(args, 1), arg_int(args, 2)
    if start < 0 or start > len(items):
        raise FunctionError(f"the start index {start} is out of range", argument=1)
    if end < start or end > len(items):
        raise FunctionError(f"the end index {end} is out of range", argument=2)
    return items[start:end]


@function("sort", 1)
def _sort(args: list[Value]) -> Value:
    return sorted(arg_strings(args, 0))


@function("zipmap", 2)
def _zipmap(args: list[Value]) -> Value:
    keys, values = arg_strings(args, 0), arg_list(args, 1)
    if len(keys) != len(values):
        raise FunctionError(f"there are {len(keys)} keys but {len(values)} values", argument=1)
    return dict(zip(keys, values, strict=True))


@function("max", 1, None)
def _max(args: list[Value]) -> Value:
    return max(arg_number(args, index) for index in range(len(args)))


@function("min", 1, None)
def _min(args: list[Value]) -> Value:
    return min(arg_number(args, index) for index in range(len(args)))


COLLECTION_FUNCTIONS: tuple[LibraryFunction, ...] = (
    _chunklist, _coalesce, _coalescelist, _compact, _concat, _contains, _distinct, _element, _flatten, _index,
    _keys, _values, _length, _lookup, _merge, _range, _setintersection, _setunion, _setproduct, _slice, _sort,
    _zipmap, _max, _min,
)  # fmt: skip
