"""The plumbing every library function shares: arity, argument conversion and argument-precise errors.

Why: cty functions declare typed parameters, so `upper(5)` is "5" and `length(null)` is an error naming the
argument. Doing those conversions ad hoc in ninety functions would drift; here each argument is converted once, the
cty way, and a refusal says which argument was wrong so the error points at it in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from nomad_operator.jobspec.errors import SourcePos
from nomad_operator.jobspec.hcl_types import ConversionError, Value, to_number, to_string, type_name
from nomad_operator.jobspec.scope import FunctionError, Scope

_Converted = TypeVar("_Converted")


@dataclass(frozen=True, slots=True)
class LibraryFunction:
    """A function of Nomad's HCL2 library: `impl` receives the evaluated arguments as a list."""

    name: str
    impl: Callable[[list[Value]], Value]
    min_args: int
    max_args: int | None

    def __call__(self, args: Sequence[Value], *, scope: Scope, pos: SourcePos) -> Value:
        return self.impl(list(args))


def function(
    name: str, minimum: int, maximum: int | None = -1
) -> Callable[[Callable[[list[Value]], Value]], LibraryFunction]:
    """Decorator: register an implementation with its arity (`maximum=None` for variadic, -1 for exactly minimum)."""

    def wrap(impl: Callable[[list[Value]], Value]) -> LibraryFunction:
        return LibraryFunction(name, impl, minimum, minimum if maximum == -1 else maximum)

    return wrap


def arg_not_null(args: list[Value], index: int) -> Value:
    """The argument as it is, refused when null (cty parameters do not accept null unless they say so)."""
    value = args[index]
    if value is None:
        raise FunctionError(f"argument {index + 1} must not be null", argument=index)
    return value


def _converted(args: list[Value], index: int, conversion: Callable[[Value], _Converted]) -> _Converted:
    """The argument converted the cty way; a refusal names the argument, so the error points at it in the file."""
    try:
        return conversion(arg_not_null(args, index))
    except ConversionError as exc:
        raise FunctionError(f"argument {index + 1}: {exc}", argument=index) from None


def arg_string(args: list[Value], index: int) -> str:
    return _converted(args, index, to_string)


def arg_number(args: list[Value], index: int) -> int | float:
    return _converted(args, index, to_number)


def arg_int(args: list[Value], index: int) -> int:
    number = arg_number(args, index)
    if not isinstance(number, int):
        raise FunctionError(f"argument {index + 1} must be a whole number, not {number}", argument=index)
    return number


def arg_list(args: list[Value], index: int) -> list[Value]:
    value = arg_not_null(args, index)
    if not isinstance(value, list):
        raise FunctionError(f"argument {index + 1} must be a list, not {type_name(value)}", argument=index)
    return value


def arg_map(args: list[Value], index: int) -> dict[str, Value]:
    value = arg_not_null(args, index)
    if not isinstance(value, dict):
        raise FunctionError(f"argument {index + 1} must be a map or object, not {type_name(value)}", argument=index)
    return value


def arg_strings(args: list[Value], index: int) -> list[str]:
    items = arg_list(args, index)
    result: list[str] = []
    for position, item in enumerate(items):
        if item is None:
            raise FunctionError(f"argument {index + 1}: element {position} is null", argument=index)
        try:
            result.append(to_string(item))
        except ConversionError as exc:
            raise FunctionError(f"argument {index + 1}: element {position}: {exc}", argument=index) from None
    return result
