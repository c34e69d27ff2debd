"""What an expression can reach while it is evaluated: names (`var`, `local`, iterators) and functions.

Why a module of its own: the expression evaluator, the template evaluator and the function library all take a
Scope, and none of them should import the others to name it. The hazard it carries is Nomad's split between names it
knows and names it must leave alone: a root such as `attr`, `node`, `meta`, `env` or `NOMAD_ALLOC_ID` that is not in
`names` is a runtime interpolation, kept as `${...}` text, while `var.x` for an undeclared `x` is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nomad_operator.jobspec.errors import JobspecError, SourcePos
from nomad_operator.jobspec.hcl_types import Value


class EvalError(JobspecError):
    """An expression could not be evaluated; the message names the thing at fault."""


class DependentError(EvalError):
    """A reference to a variable or local that already failed; not reported again, the first error says why."""


class FailedValue:
    """Stands in for a variable or local whose own evaluation failed, so references to it fail quietly."""

    _instance: FailedValue | None = None

    def __new__(cls) -> FailedValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<failed value>"


FAILED = FailedValue()


def report(errors: list[JobspecError], error: JobspecError) -> None:
    """Collect an error unless it only echoes an earlier failure."""
    if not isinstance(error, DependentError):
        errors.append(error)


class FunctionError(Exception):
    """A function refused its arguments; `argument` is the 0-based index of the one at fault, when known."""

    def __init__(self, message: str, *, argument: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


class HclFunction(Protocol):
    """One function of the library: its arity and its implementation over evaluated arguments."""

    @property
    def name(self) -> str: ...

    @property
    def min_args(self) -> int: ...

    @property
    def max_args(self) -> int | None: ...

    def __call__(self, args: Sequence[Value], *, scope: Scope, pos: SourcePos) -> Value: ...


@dataclass(frozen=True, slots=True)
class Scope:
    """Names and functions in reach.

    `references_allowed` and `functions_allowed` are off where Nomad evaluates with no context at all (variable
    defaults, var files, `-var` values), so `default = var.x` or `default = upper("a")` fail as they do in Nomad.
    """

    names: Mapping[str, Value]
    functions: Mapping[str, HclFunction] = field(default_factory=dict)
    references_allowed: bool = True
    functions_allowed: bool = True

    def child(self, extra: Mapping[str, Value]) -> Scope:
        """A scope with more names (a `for` variable or a dynamic block iterator), shadowing outer ones."""
        names = dict(self.names)
        names.update(extra)
        return Scope(
            names,
            self.functions,
            references_allowed=self.references_allowed,
            functions_allowed=self.functions_allowed,
        )


# Where Nomad evaluates with a nil EvalContext: literals only.
CONSTANT_SCOPE = Scope({}, {}, references_allowed=False, functions_allowed=False)
