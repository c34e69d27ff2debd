"""String templates: `"a ${x} %{ if c }b%{ endif }"` and heredoc bodies (cut into tokens by `heredocs`), assembled
and rendered as HCL does.

Why this exists: python-hcl2 keeps heredocs as one raw token and mangles them when it flattens (`<<EOF` loses its
trailing newline, `<<-EOT` backslashes every quote), and its grammar has no strip markers in quoted interpolations.
Job files live on heredocs (consul-template text full of `{{ key "a/b" }}`, shell scripts with `$${VAR}`), so a
byte that changes here changes a running service.

Hazards handled, each as hclsyntax does it (parser_template.go):
- heredoc literals are cut one token per line; `~` strips whitespace only from the neighbouring literal token, and
  `<<-` removes the least indentation of the non-blank lines (blank lines keep theirs), counted before rendering;
- `$${` and `%%{` are escapes for `${` and `%{`; backslash escapes exist in quoted strings only, never in heredocs;
- a template that is exactly one interpolation returns the value itself (`"${var.list}"` is a list);
- a Nomad runtime reference (`${attr.kernel.name}`, `${ env["X"] }`) is kept byte for byte, spaces included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lark import Token, Tree

from nomad_operator.jobspec.errors import SourcePos
from nomad_operator.jobspec.hcl_tree import Expr, SourceText
from nomad_operator.jobspec.hcl_types import ConversionError, Value, iteration_pairs, to_bool, to_string, type_name
from nomad_operator.jobspec.scope import EvalError, Scope

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class ExpressionEvaluator(Protocol):
    """How templates reach back into the expression evaluator without importing it."""

    def evaluate(self, expr: Expr, scope: Scope) -> Value: ...

    def is_runtime_reference(self, expr: Expr, scope: Scope) -> bool: ...


# --- flat template tokens, as the parser sees them ----------------------------------------------------------------


@dataclass(slots=True)
class Literal:
    text: str
    pos: SourcePos


@dataclass(slots=True)
class Interp:
    expr: Expr
    raw: str  # the text between `${`/`${~` and `}`/`~}`, kept for runtime references
    pos: SourcePos
    strip_left: bool = False
    strip_right: bool = False


@dataclass(slots=True)
class Directive:
    keyword: str  # if | for | else | endif | endfor
    pos: SourcePos
    expr: Expr | None = None
    key_name: str | None = None
    value_name: str | None = None
    strip_left: bool = False
    strip_right: bool = False


TemplateToken = Literal | Interp | Directive


# --- the assembled template ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _If:
    cond: Expr
    then: list[_Node]
    otherwise: list[_Node]
    pos: SourcePos


@dataclass(slots=True)
class _For:
    key_name: str | None
    value_name: str
    collection: Expr
    body: list[_Node]
    pos: SourcePos


_Node = Literal | Interp | _If | _For


@dataclass(slots=True)
class Template:
    """A parsed template: literal text, interpolations and directives; `passthrough` when it is one interpolation."""

    nodes: list[_Node] = field(default_factory=list)
    passthrough: bool = False


def unescape_quoted(text: str, pos: SourcePos) -> str:
    """Process the backslash escapes of a quoted string (\\n \\r \\t \\" \\\\ \\uNNNN \\UNNNNNNNN)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = text[index + 1 : index + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code in ("u", "U"):
            width = 4 if code == "u" else 8
            digits = text[index + 2 : index + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise EvalError(f"Invalid escape sequence: \\{code} needs {width} hex digits", pos)
            out.append(chr(int(digits, 16)))
            index += 2 + width
        else:
            raise EvalError(f'Invalid escape sequence \\{code}: only \\n \\r \\t \\" \\\\ \\u and \\U are allowed', pos)
    return "".join(out)


def unescape_template_markers(text: str) -> str:
    return text.replace("$${", "${").replace("%%{", "%{")


# --- quoted strings, from python-hcl2's parse tree ------------------------------------------------------------------


def template_from_string_node(node: Tree[Token], source: SourceText) -> Template:
    """A `string` tree node (a quoted template) as a Template."""
    tokens: list[TemplateToken] = []
    for part in node.children:
        if not isinstance(part, Tree):
            continue  # the quotes
        item = part.children[0]
        if isinstance(item, Token):
            pos = source.node_pos(item)
            if item.type == "STRING_CHARS":
                if "\n" in item:
                    raise EvalError("Invalid multi-line string: quoted strings may not span lines; use a heredoc", pos)
                tokens.append(Literal(unescape_quoted(str(item), pos), pos))
            else:  # ESCAPED_INTERPOLATION / ESCAPED_DIRECTIVE: `$${...}` -> `${...}`
                tokens.append(Literal(str(item)[1:2] + unescape_quoted(str(item)[2:], pos), pos))
        else:
            tokens.append(_token_from_tree(item, source))
    return finish_template(tokens, flush=False, source=source)


def _token_from_tree(item: Tree[Token], source: SourceText) -> TemplateToken:
    pos = source.node_pos(item)
    children = item.children
    strip_left = len(children) > 1 and isinstance(children[1], Token) and children[1].type == "STRIP_MARKER"
    strip_right = len(children) > 1 and isinstance(children[-2], Token) and children[-2].type == "STRIP_MARKER"
    expressions = [c for c in children if isinstance(c, Tree) and c.data not in ("identifier", "new_line_or_comment")]
    expr = Expr(expressions[0], source) if expressions else None
    if item.data == "interpolation":
        assert expr is not None
        opener = children[1] if strip_left else children[0]
        closer = children[-2] if strip_right else children[-1]
        assert isinstance(opener, Token)
        assert isinstance(closer, Token)
        raw = source.text[opener.end_pos : closer.start_pos]
        return Interp(expr, raw, pos, strip_left, strip_right)
    keyword = item.data.removeprefix("template_").removesuffix("_start")
    names = [str(c.children[0]) for c in children if isinstance(c, Tree) and c.data == "identifier"]
    key_name, value_name = (names[0], names[1]) if len(names) == 2 else (None, names[0] if names else None)
    return Directive(keyword, pos, expr, key_name, value_name, strip_left, strip_right)


# --- shared: trimming, flush, assembly -------------------------------------------------------------------------------


def finish_template(tokens: list[TemplateToken], *, flush: bool, source: SourceText) -> Template:
    _apply_strip_markers(tokens)
    if flush:
        _flush_heredoc(tokens)
    melded: list[TemplateToken] = []
    for token in tokens:
        if isinstance(token, Literal) and melded and isinstance(melded[-1], Literal):
            melded[-1] = Literal(melded[-1].text + token.text, melded[-1].pos)
        else:
            melded.append(token)
    passthrough = len(melded) == 1 and isinstance(melded[0], Interp)
    nodes, end = _assemble(melded, 0, closers=())
    if end != len(melded):
        stray = melded[end]
        assert isinstance(stray, Directive)
        raise EvalError(f"Unexpected {stray.keyword} directive: the control directives are unbalanced", stray.pos)
    return Template(nodes, passthrough)


def _apply_strip_markers(tokens: list[TemplateToken]) -> None:
    for index, token in enumerate(tokens):
        if isinstance(token, Literal):
            continue
        if token.strip_left and index > 0:
            previous = tokens[index - 1]
            if isinstance(previous, Literal):
                previous.text = previous.text.rstrip()
        if token.strip_right and index + 1 < len(tokens):
            following = tokens[index + 1]
            if isinstance(following, Literal):
                following.text = following.text.lstrip()


def _flush_heredoc(tokens: list[TemplateToken]) -> None:
    least: int | None = None
    adjust: list[Literal] = []
    at_line_start = True
    for token in tokens:
        if at_line_start:
            at_line_start = False
            if isinstance(token, Literal):
                trimmed = token.text.lstrip()
                if not (trimmed == "" and token.text.endswith("\n")):  # blank lines do not count and keep theirs
                    spaces = len(token.text) - len(trimmed)
                    least = spaces if least is None else min(least, spaces)
                    adjust.append(token)
            else:
                least = 0
        if isinstance(token, Literal) and token.text.endswith("\n"):
            at_line_start = True
    for literal in adjust:
        literal.text = literal.text[least or 0 :]


def _assemble(tokens: list[TemplateToken], index: int, *, closers: tuple[str, ...]) -> tuple[list[_Node], int]:
    nodes: list[_Node] = []
    while index < len(tokens):
        token = tokens[index]
        if isinstance(token, Literal | Interp):
            nodes.append(token)
            index += 1
            continue
        if token.keyword in ("else", "endif", "endfor"):
            if token.keyword in closers:
                return nodes, index
            raise EvalError(f"Unexpected {token.keyword} directive: the control directives are unbalanced", token.pos)
        assert token.expr is not None
        if token.keyword == "if":
            then, index = _assemble(tokens, index + 1, closers=("else", "endif"))
            otherwise: list[_Node] = []
            closer = tokens[index] if index < len(tokens) else None
            if isinstance(closer, Directive) and closer.keyword == "else":
                otherwise, index = _assemble(tokens, index + 1, closers=("endif",))
            if index >= len(tokens):
                raise EvalError("Unexpected end of template: this if directive has no endif", token.pos)
            nodes.append(_If(token.expr, then, otherwise, token.pos))
        else:
            body, index = _assemble(tokens, index + 1, closers=("endfor",))
            if index >= len(tokens):
                raise EvalError("Unexpected end of template: this for directive has no endfor", token.pos)
            assert token.value_name is not None
            nodes.append(_For(token.key_name, token.value_name, token.expr, body, token.pos))
        index += 1
    if closers:
        return nodes, index
    return nodes, index


# --- rendering ------------------------------------------------------------------------------------------------------


def evaluate_template(template: Template, scope: Scope, evaluator: ExpressionEvaluator) -> Value:
    """Render a template; a lone interpolation yields its value unconverted, as in HCL."""
    if template.passthrough:
        only = template.nodes[0]
        assert isinstance(only, Interp)
        return _interpolation_value(only, scope, evaluator)
    out: list[str] = []
    _render(template.nodes, scope, evaluator, out)
    return "".join(out)


def _interpolation_value(node: Interp, scope: Scope, evaluator: ExpressionEvaluator) -> Value:
    if evaluator.is_runtime_reference(node.expr, scope):
        return "${" + node.raw + "}"
    return evaluator.evaluate(node.expr, scope)


def _render(nodes: list[_Node], scope: Scope, evaluator: ExpressionEvaluator, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Literal):
            out.append(node.text)
        elif isinstance(node, Interp):
            value = _interpolation_value(node, scope, evaluator)
            if value is None:
                raise EvalError("Invalid template interpolation value: the expression result is null", node.pos)
            try:
                out.append(to_string(value))
            except ConversionError:
                raise EvalError(
                    f"Invalid template interpolation value: cannot include a {type_name(value)} in a string "
                    "template; a string, number or bool is required",
                    node.pos,
                ) from None
        elif isinstance(node, _If):
            condition = evaluator.evaluate(node.cond, scope)
            try:
                chosen = node.then if to_bool(condition) else node.otherwise
            except ConversionError as exc:
                raise EvalError(f"Invalid template if condition: {exc}", node.pos) from None
            _render(chosen, scope, evaluator, out)
        else:
            collection = evaluator.evaluate(node.collection, scope)
            try:
                pairs = iteration_pairs(collection)
            except ConversionError as exc:
                raise EvalError(f"Invalid template for collection: {exc}", node.pos) from None
            for key, item in pairs:
                names: dict[str, Value] = {node.value_name: item}
                if node.key_name:
                    names[node.key_name] = key
                _render(node.body, scope.child(names), evaluator, out)
