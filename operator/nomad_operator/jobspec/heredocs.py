"""Heredocs (`<<EOF` and `<<-EOF`), scanned here because python-hcl2 keeps each one as a single raw token.

Why: python-hcl2's own heredoc handling loses `<<EOF`'s trailing newline and backslashes every quote of `<<-EOF`,
which breaks consul-template text such as `{{ key "app/config" }}`. We cut the token ourselves: the body is
everything between the opening line and the closing marker line, split one literal token per line as hclsyntax
scans it (strip markers and `<<-` dedent work on those pieces), `${...}` and `%{...}` are found by matching braces
outside nested strings, and each expression inside is parsed on its own with its file position. Parsed heredocs
are cached by file position and text.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from lark import Token

from nomad_operator.jobspec.errors import SourcePos
from nomad_operator.jobspec.hcl_tree import Expr, SourceText, parse_expression
from nomad_operator.jobspec.scope import EvalError
from nomad_operator.jobspec.templates import (
    Directive,
    Interp,
    Literal,
    Template,
    TemplateToken,
    finish_template,
    unescape_template_markers,
)

HEREDOC_CACHE_SIZE = 2048

_FOR_DIRECTIVE = re.compile(r"for\s+([A-Za-z_][\w-]*)\s*(?:,\s*([A-Za-z_][\w-]*)\s*)?\s+in\s+(.*)", re.S)
_LINES = re.compile(r"[^\n]*\n|[^\n]+")

# -----------------------------------------------------------------------------------------

_HEREDOC_CACHE: OrderedDict[tuple[str, int, int, str], Template] = OrderedDict()


def template_from_heredoc(token: Token, source: SourceText) -> Template:
    """A heredoc token (`<<EOF ... EOF` or `<<-EOF ... EOF`) as a Template; cached per file position and text."""
    start = source.node_pos(token)
    key = (source.filename, start.line, start.column, str(token))
    cached = _HEREDOC_CACHE.get(key)
    if cached is not None:
        _HEREDOC_CACHE.move_to_end(key)
        return cached
    text = str(token).replace("\r\n", "\n")
    flush = text.startswith("<<-")
    first_newline = text.index("\n")
    rest = text[first_newline + 1 :].removesuffix("\n")
    # The closing marker is the last line; everything before it (with its newline) is the body.
    marker_start = rest.rfind("\n") + 1
    body = rest[:marker_start]
    body_source = SourceText(source.filename, body, start.line + 1, 1)
    template = finish_template(_scan_heredoc(body, body_source), flush=flush, source=body_source)
    _HEREDOC_CACHE[key] = template
    while len(_HEREDOC_CACHE) > HEREDOC_CACHE_SIZE:
        _HEREDOC_CACHE.popitem(last=False)
    return template


def _offset_pos(source: SourceText, text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _scan_heredoc(body: str, source: SourceText) -> list[TemplateToken]:
    tokens: list[TemplateToken] = []
    literal_start = 0
    index = 0
    length = len(body)
    while index < length:
        if body.startswith(("$${", "%%{"), index):
            index += 3
            continue
        if not body.startswith(("${", "%{"), index):
            index += 1
            continue
        _add_heredoc_literal(tokens, body, literal_start, index, source)
        close = find_closing_brace(body, index + 2)
        if close < 0:
            line, column = _offset_pos(source, body, index)
            raise EvalError(
                "Unclosed template sequence: no closing brace before the end of the heredoc", source.pos(line, column)
            )
        inner_start, inner_end = index + 2, close
        strip_left = body.startswith("~", inner_start)
        strip_right = inner_end > inner_start and body[inner_end - 1] == "~"
        inner_start += strip_left
        inner_end -= strip_right
        line, column = _offset_pos(source, body, index)
        pos = source.pos(line, column)
        inner = body[inner_start:inner_end]
        expr_line, expr_column = _offset_pos(source, body, inner_start)
        expr_source_at = source.pos(expr_line, expr_column)
        if body[index] == "$":
            expr_source = SourceText(source.filename, inner, expr_source_at.line, expr_source_at.column)
            expr = Expr(parse_expression(inner, source=expr_source), expr_source)
            tokens.append(Interp(expr, inner, pos, strip_left, strip_right))
        else:
            tokens.append(_directive_from_text(inner, pos, expr_source_at, strip_left, strip_right))
        index = close + 1
        literal_start = index
    _add_heredoc_literal(tokens, body, literal_start, length, source)
    return tokens


def _add_heredoc_literal(tokens: list[TemplateToken], body: str, start: int, end: int, source: SourceText) -> None:
    # One literal token per line, as hclsyntax scans heredocs: strip markers and `<<-` work on these pieces.
    offset = start
    for match in _LINES.finditer(body, start, end):
        line, column = _offset_pos(source, body, offset)
        tokens.append(Literal(unescape_template_markers(match.group()), source.pos(line, column)))
        offset = match.end()


def _directive_from_text(inner: str, pos: SourcePos, at: SourcePos, strip_left: bool, strip_right: bool) -> Directive:
    stripped = inner.strip()
    lead = len(inner) - len(inner.lstrip())
    keyword = stripped.split(None, 1)[0] if stripped else ""
    if keyword in ("else", "endif", "endfor") and stripped == keyword:
        return Directive(keyword, pos, strip_left=strip_left, strip_right=strip_right)
    if keyword == "if":
        expr_text = stripped[2:]
        offset = lead + 2
        source = SourceText(at.file, expr_text, at.line + inner.count("\n", 0, offset), at.column + offset)
        expr = Expr(parse_expression(expr_text, source=source), source)
        return Directive("if", pos, expr, strip_left=strip_left, strip_right=strip_right)
    match = _FOR_DIRECTIVE.fullmatch(stripped)
    if keyword == "for" and match:
        first, second, collection = match.groups()
        offset = lead + match.start(3)
        source = SourceText(at.file, collection, at.line + inner.count("\n", 0, offset), at.column + offset)
        expr = Expr(parse_expression(collection, source=source), source)
        key_name, value_name = (first, second) if second else (None, first)
        return Directive("for", pos, expr, key_name, value_name, strip_left, strip_right)
    raise EvalError(
        f"Invalid template directive %{{{stripped[:30]}}}: expected if, else, endif, for or endfor "
        "(write %%{ for a literal %{)",
        pos,
    )


def find_closing_brace(text: str, start: int) -> int:
    """The index of the `}` closing a `${`/`%{` opened just before `start`, or -1; skips nested strings and braces."""
    depth = 0
    index = start
    length = len(text)
    while index < length:
        char = text[index]
        if char == '"':
            index = _skip_quoted(text, index + 1)
            if index < 0:
                return -1
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return -1


def _skip_quoted(text: str, index: int) -> int:
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
        elif char == '"':
            return index + 1
        elif text.startswith(("$${", "%%{"), index):
            index += 3
        elif text.startswith(("${", "%{"), index):
            close = find_closing_brace(text, index + 2)
            if close < 0:
                return -1
            index = close + 1
        else:
            index += 1
    return -1
