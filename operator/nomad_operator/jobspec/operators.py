"""HCL's operators and index rules on plain values: arithmetic, comparison, logic operands and `x[k]`.

Why: these are the places where Python's own rules would quietly differ from cty's. `"5" + 1` is 6 in HCL, `7 / 2`
is 3.5 but `8 / 2` is the whole number 4, `%` takes the dividend's sign as Go does, a list index may be the
string "1", and dividing by zero is an error rather than infinity. Each function raises EvalError naming the
operator and position.
"""

from __future__ import annotations

import math

from nomad_operator.jobspec.errors import SourcePos
from nomad_operator.jobspec.hcl_types import (
    ConversionError,
    Value,
    normalize_number,
    to_bool,
    to_number,
    to_string,
    type_name,
)
from nomad_operator.jobspec.scope import EvalError


def index_value(target: Value, key: Value, pos: SourcePos | None) -> Value:
    """`target[key]` with HCL's rules and messages."""
    where = pos
    if target is None:
        raise EvalError("Invalid index: a null value has no elements", where)
    if key is None:
        raise EvalError("Invalid index: the index must not be null", where)
    if isinstance(target, list):
        try:
            number = to_number(key)
        except ConversionError as exc:
            raise EvalError(f"Invalid index: {exc}", where) from None
        if not isinstance(number, int):
            raise EvalError(f"Invalid index: {number} is not a whole number", where)
        if not 0 <= number < len(target):
            raise EvalError(f"Invalid index: {number} is out of range for a list of {len(target)} elements", where)
        return target[number]
    if isinstance(target, dict):
        try:
            name = to_string(key)
        except ConversionError as exc:
            raise EvalError(f"Invalid index: {exc}", where) from None
        if name not in target:
            raise EvalError(f'Invalid index: there is no element with the key "{name}"', where)
        return target[name]
    raise EvalError(f"Invalid index: a {type_name(target)} has no elements", where)


def operand_number(value: Value, operator: str, pos: SourcePos) -> int | float:
    try:
        return to_number(value)
    except ConversionError as exc:
        raise EvalError(f'Invalid operand for "{operator}": {exc}', pos) from None


def operand_bool(value: Value, operator: str, pos: SourcePos) -> bool:
    try:
        if value is None:
            raise ConversionError("a bool is required, but the value is null")
        return to_bool(value)
    except ConversionError as exc:
        raise EvalError(f'Invalid operand for "{operator}": {exc}', pos) from None


def arithmetic(operator: str, a: int | float, b: int | float, pos: SourcePos | None) -> Value:
    """The numeric binary operators (+ - * / % and comparisons)."""
    where = pos
    if operator == "+":
        return normalize_number(a + b)
    if operator == "-":
        return normalize_number(a - b)
    if operator == "*":
        return normalize_number(a * b)
    if operator in ("/", "%"):
        if b == 0:
            raise EvalError(f'Division by zero: the right operand of "{operator}" is zero', where)
        if operator == "/":
            if isinstance(a, int) and isinstance(b, int) and a % b == 0:
                return a // b
            return normalize_number(a / b)
        return normalize_number(math.fmod(a, b)) if isinstance(a, float) or isinstance(b, float) else _int_mod(a, b)
    comparisons = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}
    if operator in comparisons:
        return comparisons[operator]
    raise EvalError(f'Unsupported operator "{operator}"', where)


def _int_mod(a: int, b: int) -> int:
    # Go's remainder: the sign follows the dividend.
    remainder = abs(a) % abs(b)
    return -remainder if a < 0 else remainder
