"""Function calls in HCL expressions: arity, `...` expansion, the lazy `try`/`can`/`convert`, and errors that point
at the argument at fault.

Why apart from the expression evaluator: a call is where a job file meets the function library, and where most
user errors surface. The hazards: a function Nomad's jobspec2 lacks (`templatefile`, `timestamp`, `toset`) must
be refused with the reason and the alternative, not a bare "unknown function", or people keep trying it; a
function's refusal must be reported at the argument it names, not at the call; and `try`, `can` and `convert` must
see their arguments unevaluated, so a failing argument is caught rather than raised. Arity is checked here once,
from each library function's declared minimum and maximum, so no function checks its own.
"""

from __future__ import annotations

from typing import Protocol

from lark import Token, Tree

from nomad_operator.jobspec.functions import LAZY_FUNCTION_NAMES
from nomad_operator.jobspec.hcl_tree import SourceText, child_token, subtrees
from nomad_operator.jobspec.hcl_types import ConversionError, Value, convert
from nomad_operator.jobspec.scope import EvalError, FunctionError, Scope
from nomad_operator.jobspec.type_expressions import type_from_expression


class NodeEvaluator(Protocol):
    """Evaluates one expression node in a scope: the expression evaluator, handed to calls for their arguments."""

    def __call__(self, node: Tree[Token] | Token, source: SourceText, scope: Scope, /) -> Value: ...


# Functions that are not in Nomad's jobspec2 but that people try, with the reason, for a better error.
_NOT_IN_NOMAD = {
    "templatefile": "Nomad's jobspec2 has no templatefile() (hashicorp/nomad#24749); use file() and a template block",
    "timestamp": "Nomad's jobspec2 has no timestamp(); a job file must render the same on every run",
    "toset": "Nomad's jobspec2 has no toset(); use convert(value, set(string))",
    "tolist": "Nomad's jobspec2 has no tolist(); use convert(value, list(string))",
    "tomap": "Nomad's jobspec2 has no tomap(); use convert(value, map(string))",
    "tostring": "Nomad's jobspec2 has no tostring(); use convert(value, string) or a template",
    "tonumber": "Nomad's jobspec2 has no tonumber(); use convert(value, number) or parseint()",
}


def call_function(node: Tree[Token], source: SourceText, scope: Scope, *, evaluate: NodeEvaluator) -> Value:
    """Evaluate a `function_call` node: the arguments with `evaluate`, then the function from the scope's table."""
    names = [str(part.children[0]) for part in node.children if isinstance(part, Tree) and part.data == "identifier"]
    name = "::".join(names)
    pos = source.node_pos(node)
    if not scope.functions_allowed:
        raise EvalError(f'Function calls not allowed: "{name}" cannot be called here', pos)
    arguments = next((part for part in subtrees(node) if part.data == "arguments"), None)
    argument_nodes = subtrees(arguments) if arguments is not None else []
    expand_last = arguments is not None and child_token(arguments, "ELLIPSIS") is not None
    if name in LAZY_FUNCTION_NAMES:
        return _call_lazy(name, argument_nodes, source, scope, evaluate=evaluate)
    function = scope.functions.get(name)
    if function is None:
        hint = _NOT_IN_NOMAD.get(name, "there is no such function in Nomad's jobspec2")
        raise EvalError(f'Call to unknown function "{name}": {hint}', pos)
    args = [evaluate(argument, source, scope) for argument in argument_nodes]
    if expand_last:
        if not args or not isinstance(args[-1], list):
            raise EvalError(f'Invalid expanding argument to "{name}": the last argument must be a list', pos)
        args = args[:-1] + list(args[-1])
    if len(args) < function.min_args or (function.max_args is not None and len(args) > function.max_args):
        expected = _arity_text(function.min_args, function.max_args)
        raise EvalError(f'Wrong number of arguments to "{name}": it takes {expected}, got {len(args)}', pos)
    try:
        return function(args, scope=scope, pos=pos)
    except FunctionError as exc:
        where = pos
        if exc.argument is not None and exc.argument < len(argument_nodes):
            where = source.node_pos(argument_nodes[exc.argument])
        raise EvalError(f'Error in function call: "{name}" failed: {exc.message}', where) from None
    except ConversionError as exc:
        raise EvalError(f'Invalid function argument to "{name}": {exc}', pos) from None


def _call_lazy(
    name: str, nodes: list[Tree[Token]], source: SourceText, scope: Scope, *, evaluate: NodeEvaluator
) -> Value:
    """`try`, `can` and `convert`: they see their arguments unevaluated (a failure to catch, or a type)."""
    position = source.node_pos(nodes[0]) if nodes else None
    if name == "try":
        if not nodes:
            raise EvalError('Wrong number of arguments to "try": it takes at least one', position)
        failures: list[str] = []
        for argument in nodes:
            try:
                return evaluate(argument, source, scope)
            except EvalError as exc:
                failures.append(exc.message)
        raise EvalError(
            "Error in function call: try() found no argument that succeeded: " + "; ".join(failures), position
        )
    if name == "can":
        if len(nodes) != 1:
            raise EvalError('Wrong number of arguments to "can": it takes exactly 1', position)
        try:
            evaluate(nodes[0], source, scope)
        except EvalError:
            return False
        return True
    if len(nodes) != 2:
        raise EvalError('Wrong number of arguments to "convert": it takes a value and a type', position)
    target = type_from_expression(nodes[1], source)
    value = evaluate(nodes[0], source, scope)
    try:
        return convert(value, target)
    except ConversionError as exc:
        raise EvalError(f'Error in function call: "convert" failed: {exc}', source.node_pos(nodes[0])) from None


def _arity_text(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"at least {minimum}"
    if minimum == maximum:
        return f"exactly {minimum}"
    return f"{minimum} to {maximum}"
