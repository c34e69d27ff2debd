"""Type constraints written in HCL (`type = list(string)`, `convert(x, map(number))`) read from the parse tree.

Why: a type expression is not a value. `string` is not a variable reference and `list(string)` is not a function
call, so the expression evaluator must never see them; python-hcl2 even turns `list(string)` into the text
`"${list(string)}"` when it flattens. The hazard is accepting what Nomad refuses (a quoted `"string"`, a bare
`list`), so each of those is an error naming the position, as hashicorp/hcl's typeexpr does.
"""

from __future__ import annotations

from lark import Token, Tree

from nomad_operator.jobspec.hcl_tree import SourceText, subtrees
from nomad_operator.jobspec.hcl_types import PRIMITIVES, HclType, list_of, map_of, object_of, set_of, tuple_of
from nomad_operator.jobspec.scope import EvalError

_COLLECTIONS = {"list": list_of, "set": set_of, "map": map_of}
_KEYWORDS = ("string", "number", "bool", "any", "list", "set", "map", "object", "tuple")


def _unwrap(node: Tree[Token] | Token) -> Tree[Token] | Token:
    while isinstance(node, Tree) and node.data == "expr_term" and len(node.children) == 1:
        node = node.children[0]
    return node


def type_from_expression(node: Tree[Token] | Token, source: SourceText) -> HclType:
    """A type constraint from its expression tree; raises EvalError with the position on anything else."""
    inner = _unwrap(node)
    pos = source.node_pos(node)
    if isinstance(inner, Tree) and inner.data == "identifier":
        name = str(inner.children[0])
        if name in PRIMITIVES:
            return PRIMITIVES[name]
        if name in _COLLECTIONS or name in ("object", "tuple"):
            raise EvalError(f'Invalid type specification: the "{name}" type constructor requires an argument', pos)
        raise EvalError(f'Invalid type specification: "{name}" is not a type; use one of {", ".join(_KEYWORDS)}', pos)
    if isinstance(inner, Tree) and inner.data == "function_call":
        parts = subtrees(inner)
        name = str(parts[0].children[0])
        arguments = subtrees(parts[1]) if len(parts) > 1 and parts[1].data == "arguments" else []
        if len(arguments) != 1:
            raise EvalError(f'Invalid type specification: "{name}(...)" takes exactly one argument', pos)
        if name in _COLLECTIONS:
            return _COLLECTIONS[name](type_from_expression(arguments[0], source))
        argument = _unwrap(arguments[0])
        if name == "object":
            if not (isinstance(argument, Tree) and argument.data == "object"):
                raise EvalError("Invalid type specification: object() requires an object of attribute types", pos)
            attributes: dict[str, HclType] = {}
            for element in subtrees(argument):
                key_node, type_node = subtrees(element)
                key = _unwrap(subtrees(key_node)[0]) if subtrees(key_node) else key_node
                if not (isinstance(key, Tree) and key.data == "identifier"):
                    raise EvalError(
                        "Invalid type specification: object attribute names must be bare names",
                        source.node_pos(key_node),
                    )
                attributes[str(key.children[0])] = type_from_expression(type_node, source)
            return object_of(attributes)
        if name == "tuple":
            if not (isinstance(argument, Tree) and argument.data == "tuple"):
                raise EvalError("Invalid type specification: tuple() requires a list of element types", pos)
            return tuple_of([type_from_expression(item, source) for item in subtrees(argument)])
        raise EvalError(f'Invalid type specification: "{name}" is not a type constructor', pos)
    text = source.node_text(node) or "this expression"
    raise EvalError(f"Invalid type specification: {text} is not a type (write e.g. string, list(string), any)", pos)
