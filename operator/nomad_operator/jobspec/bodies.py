"""Bodies: a parse tree's attributes and blocks, read once, then evaluated into the `Block` model with `dynamic`
blocks expanded.

Why: this is where HCL's structural rules live, the ones python-hcl2 drops: an attribute set twice in one body is an
error ("Attribute redefined"), not last-wins; block labels are literal strings; `dynamic "x" { for_each, iterator,
labels, content }` becomes one `x` block per element, in place, with the iterator in scope for nested dynamics.
Every problem is collected rather than raised, so one pass reports all the errors of a file.

One fact of Nomad's decoder is recorded for the mapper without knowing the schema: an attribute written as an object
literal (`config { k = { ... } }`) is wrapped in a list by Nomad's free-map reader, one given as `var.m` is not.
Such values arrive as `ObjectLiteral`, a dict subclass; everywhere else they are plain dicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lark import Token, Tree

from nomad_operator.jobspec.body import Attribute, Block
from nomad_operator.jobspec.errors import JobspecError, SourcePos
from nomad_operator.jobspec.expressions import Evaluator
from nomad_operator.jobspec.hcl_tree import Expr, SourceText, subtrees
from nomad_operator.jobspec.hcl_types import ConversionError, Value, iteration_pairs, to_string
from nomad_operator.jobspec.scope import EvalError, Scope, report
from nomad_operator.jobspec.templates import unescape_quoted

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DYNAMIC_ATTRIBUTES = ("for_each", "iterator", "labels")


class ObjectLiteral(dict[str, Value]):
    """An attribute value written as an object constructor `{ ... }` (Nomad's free maps wrap these in a list)."""


@dataclass(slots=True)
class RawAttribute:
    name: str
    expr: Expr
    pos: SourcePos


@dataclass(slots=True)
class RawBlock:
    type: str
    labels: tuple[str, ...]
    pos: SourcePos
    body: RawBody


@dataclass(slots=True)
class RawBody:
    """One body as written: attributes by name (duplicates already reported) and blocks in source order."""

    attributes: dict[str, RawAttribute] = field(default_factory=dict)
    blocks: list[RawBlock] = field(default_factory=list)


def _name_of(node: Tree[Token] | Token) -> str:
    while isinstance(node, Tree):
        node = node.children[0]
    return str(node)


def read_body(body: Tree[Token], source: SourceText, errors: list[JobspecError]) -> RawBody:
    """A `body` tree as a RawBody; duplicate attributes and bad labels go to `errors`."""
    raw = RawBody()
    for item in body.children:
        if not isinstance(item, Tree):
            continue
        if item.data == "attribute":
            name = _name_of(item.children[0])
            pos = source.node_pos(item)
            previous = raw.attributes.get(name)
            if previous is not None:
                errors.append(JobspecError(
                    f'Attribute redefined: "{name}" was already set at line {previous.pos.line}; '
                    "each argument may be set only once",
                    pos,
                ))  # fmt: skip
                continue
            expression = [child for child in item.children[1:] if isinstance(child, Tree)][-1]
            raw.attributes[name] = RawAttribute(name, Expr(expression, source), pos)
        elif item.data == "block":
            block = _read_block(item, source, errors)
            if block is not None:
                raw.blocks.append(block)
    return raw


def _read_block(item: Tree[Token], source: SourceText, errors: list[JobspecError]) -> RawBlock | None:
    parts = subtrees(item)
    body_tree = parts[-1]
    block_type = _name_of(parts[0])
    labels: list[str] = []
    ok = True
    for label in parts[1:-1]:
        if label.data == "string":
            text: list[str] = []
            for part in label.children:
                if not isinstance(part, Tree):
                    continue
                token = part.children[0]
                if not (isinstance(token, Token) and token.type == "STRING_CHARS"):
                    errors.append(JobspecError(
                        f'Invalid block label for "{block_type}": template sequences are not allowed in labels',
                        source.node_pos(label),
                    ))  # fmt: skip
                    ok = False
                    break
                try:
                    text.append(unescape_quoted(str(token), source.node_pos(token)))
                except EvalError as exc:
                    errors.append(exc)
                    ok = False
            labels.append("".join(text))
        else:
            labels.append(_name_of(label))
    body = read_body(body_tree, source, errors)
    return RawBlock(block_type, tuple(labels), source.node_pos(item), body) if ok else None


def _is_object_constructor(expr: Expr) -> bool:
    node = expr.node
    return (
        isinstance(node, Tree) and node.data == "expr_term" and len(node.children) == 1
        and isinstance(node.children[0], Tree) and node.children[0].data == "object"
    )  # fmt: skip


def _detach(value: Value) -> Value:
    """A private copy of containers, so no two attributes share a list or dict the mapper might change."""
    if isinstance(value, dict):
        return {key: _detach(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_detach(item) for item in value]
    return value


class BodyEvaluator:
    """Evaluates RawBodies into Blocks, collecting errors."""

    def __init__(self, evaluator: Evaluator, errors: list[JobspecError]) -> None:
        self._evaluator = evaluator
        self._errors = errors

    def attribute_value(self, attribute: RawAttribute, scope: Scope) -> tuple[bool, Value]:
        try:
            value = _detach(self._evaluator.evaluate(attribute.expr, scope))
        except JobspecError as exc:
            report(self._errors, exc)
            return False, None
        if isinstance(value, dict) and _is_object_constructor(attribute.expr):
            value = ObjectLiteral(value)
        return True, value

    def block(self, raw: RawBlock, scope: Scope) -> Block:
        return self.body(raw.body, scope, block_type=raw.type, labels=raw.labels, pos=raw.pos)

    def body(self, raw: RawBody, scope: Scope, *, block_type: str, labels: tuple[str, ...], pos: SourcePos) -> Block:
        result = Block(block_type, labels, pos)
        for attribute in raw.attributes.values():
            ok, value = self.attribute_value(attribute, scope)
            if ok:
                result.attributes[attribute.name] = Attribute(attribute.name, value, attribute.pos)
        for child in raw.blocks:
            if child.type == "dynamic":
                result.blocks.extend(self._expand_dynamic(child, scope))
            else:
                result.blocks.append(self.block(child, scope))
        return result

    def _expand_dynamic(self, raw: RawBlock, scope: Scope) -> list[Block]:
        errors_before = len(self._errors)
        if len(raw.labels) != 1:
            self._errors.append(JobspecError(
                'Invalid dynamic block: it needs exactly one label, the type of the blocks to generate', raw.pos
            ))  # fmt: skip
            return []
        block_type = raw.labels[0]
        body = raw.body
        for name, attribute in body.attributes.items():
            if name not in _DYNAMIC_ATTRIBUTES:
                self._errors.append(JobspecError(
                    f'Unsupported argument "{name}" in dynamic "{block_type}": expected for_each, iterator, labels '
                    "and a content block",
                    attribute.pos,
                ))  # fmt: skip
        contents = [block for block in body.blocks if block.type == "content"]
        for block in body.blocks:
            if block.type != "content":
                self._errors.append(JobspecError(
                    f'Unsupported block "{block.type}" in dynamic "{block_type}": only one content block is allowed',
                    block.pos,
                ))  # fmt: skip
        if len(contents) != 1:
            where = contents[1].pos if contents else raw.pos
            self._errors.append(JobspecError(
                f'Invalid dynamic "{block_type}": it needs exactly one content block, found {len(contents)}', where
            ))  # fmt: skip
        if "for_each" not in body.attributes:
            self._errors.append(JobspecError(f'Missing for_each in dynamic "{block_type}"', raw.pos))
        iterator = block_type
        if "iterator" in body.attributes:
            iterator_expr = body.attributes["iterator"].expr
            iterator = iterator_expr.text.strip()
            if not _IDENTIFIER.fullmatch(iterator):
                self._errors.append(JobspecError(
                    f'Invalid dynamic iterator "{iterator}": it must be a bare name', body.attributes["iterator"].pos
                ))  # fmt: skip
        if len(self._errors) != errors_before:
            return []
        for_each = body.attributes["for_each"]
        ok, collection = self.attribute_value(for_each, scope)
        if not ok:
            return []
        try:
            pairs = iteration_pairs(collection)
        except ConversionError as exc:
            self._errors.append(JobspecError(f'Invalid dynamic for_each value for "{block_type}": {exc}', for_each.pos))
            return []
        generated: list[Block] = []
        for key, value in pairs:
            inner = scope.child({iterator: {"key": key, "value": value}})
            labels = self._dynamic_labels(body, inner, block_type)
            if labels is None:
                continue
            generated.append(self.body(contents[0].body, inner, block_type=block_type, labels=labels, pos=raw.pos))
        return generated

    def _dynamic_labels(self, body: RawBody, scope: Scope, block_type: str) -> tuple[str, ...] | None:
        attribute = body.attributes.get("labels")
        if attribute is None:
            return ()
        ok, value = self.attribute_value(attribute, scope)
        if not ok:
            return None
        if not isinstance(value, list):
            self._errors.append(
                JobspecError(f'Invalid dynamic labels for "{block_type}": a list is required', attribute.pos)
            )
            return None
        labels: list[str] = []
        for item in value:
            try:
                if item is None:
                    raise ConversionError("a label must not be null")
                labels.append(to_string(item))
            except ConversionError as exc:
                self._errors.append(JobspecError(f'Invalid dynamic label for "{block_type}": {exc}', attribute.pos))
                return None
        return tuple(labels)
