"""The subset of go-bexpr `filter` expressions the simulator evaluates, and a 400 for everything else.

A list endpoint that silently ignored a filter it could not read would return too much, and an operator acting on
that list could stop things it never meant to touch. So the simulator evaluates the simple forms the operator uses
(`Selector == "value"`, `!=`, `"value" in Selector`, `Selector is empty`, joined with `and`/`or`) and rejects any
other expression with Nomad's 400 text rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from nomad_operator.sim.errors import bad_request

Predicate = Callable[[Mapping[str, Any]], bool]

_SELECTOR = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+|\[\"[^\"]*\"\])*"
_LITERAL = r"\"(?:[^\"\\]|\\.)*\"|`[^`]*`|-?\d+(?:\.\d+)?|true|false"
_COMPARE = re.compile(rf"^\s*(?P<sel>{_SELECTOR})\s*(?P<op>==|!=)\s*(?P<lit>{_LITERAL})\s*$")
_IN = re.compile(rf"^\s*(?P<lit>{_LITERAL})\s+(?P<neg>not\s+)?in\s+(?P<sel>{_SELECTOR})\s*$")
_EMPTY = re.compile(rf"^\s*(?P<sel>{_SELECTOR})\s+is\s+(?P<neg>not\s+)?empty\s*$")
_SPLIT_OR = re.compile(r"\s+or\s+")
_SPLIT_AND = re.compile(r"\s+and\s+")


class FilterError(ValueError):
    pass


def _error(expression: str, reason: str) -> Exception:
    return bad_request(f"failed to create result paginator: failed to read filter expression: {reason}: {expression}")


def _literal(text: str) -> Any:
    if text.startswith('"'):
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text.startswith("`"):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return float(text) if "." in text else int(text)


def _select(item: Any, selector: str) -> Any:
    parts = re.findall(r"\[\"([^\"]*)\"\]|\.?([A-Za-z0-9_\-]+)", selector)
    value = item
    for quoted, plain in parts:
        key = quoted or plain
        if isinstance(value, Mapping):
            value = value.get(key)
        else:
            return None
    return value


def _equal(value: Any, literal: Any) -> bool:
    if isinstance(literal, bool) or isinstance(value, bool):
        return bool(value == literal)
    if isinstance(literal, int | float) and isinstance(value, int | float):
        return bool(value == literal)
    return str(value) == str(literal) if value is not None else literal == ""


def _clause(text: str, expression: str) -> Predicate:
    match = _COMPARE.match(text)
    if match:
        selector, literal = match["sel"], _literal(match["lit"])
        negate = match["op"] == "!="
        return lambda item: _equal(_select(item, selector), literal) != negate
    match = _IN.match(text)
    if match:
        selector, literal = match["sel"], _literal(match["lit"])
        negate = bool(match["neg"])

        def contains(item: Mapping[str, Any]) -> bool:
            value = _select(item, selector)
            found = literal in value if isinstance(value, list | dict | str) else False
            return found != negate

        return contains
    match = _EMPTY.match(text)
    if match:
        selector = match["sel"]
        negate = bool(match["neg"])
        return lambda item: (not _select(item, selector)) != negate
    raise _error(expression, f"unsupported clause {text.strip()!r}")


def compile_filter(expression: str) -> Predicate:
    """A predicate for `expression`; raises ApiError 400 for anything this subset cannot evaluate."""
    if not expression.strip():
        return lambda item: True
    if "(" in expression or ")" in expression:
        raise _error(expression, "parentheses are not supported by the simulator")
    alternatives = []
    for alternative in _SPLIT_OR.split(expression):
        clauses = [_clause(part, expression) for part in _SPLIT_AND.split(alternative)]
        alternatives.append(clauses)
    return lambda item: any(all(clause(item) for clause in clauses) for clauses in alternatives)
