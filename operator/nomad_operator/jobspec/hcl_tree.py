"""Parsing HCL text into a lark tree with positions, using python-hcl2's own grammar.

Why not `hcl2.loads`: it flattens the file into dicts, so duplicate attributes silently win last, positions are lost,
and heredocs are cut wrongly (`<<EOF` loses its trailing newline, `<<-EOT` backslashes every quote). We take the raw
lark tree instead and walk it ourselves.

Hazards handled here:
- python-hcl2's grammar has no strip markers in interpolations (`${~ x ~}` is a syntax error there); we load its
  grammar text and add them, and fail loudly at import if the grammar changed shape under us.
- Building the LALR tables costs seconds; lark's cache file (keyed by a hash of grammar and options) keeps that to a
  one-off, and `warm_parser()` lets an image build pay it.
- A parse costs about 0.15 ms a line and holds the GIL: trees are cached by content hash so an unchanged file is
  never parsed twice in one process.
- lark's exceptions name grammar terminals (`RBRACE`, `NL_OR_COMMENT`); we turn them into sentences with a position.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import hcl2
from hcl2.postlexer import PostLexer
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from nomad_operator.jobspec.errors import JobspecError, SourcePos

# How many parsed files (and heredoc templates) to keep per process.
TREE_CACHE_SIZE = 512

_INTERPOLATION_RULE = "interpolation: INTERP_START expression RBRACE"
_INTERPOLATION_WITH_STRIP = "interpolation: INTERP_START STRIP_MARKER? expression STRIP_MARKER? RBRACE"

# Grammar terminals in words, for syntax errors people can read.
_TERMINAL_WORDS: dict[str, str] = {
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "RSQB": "']'",
    "LSQB": "'['",
    "RPAR": "')'",
    "LPAR": "'('",
    "EQ": "'='",
    "COLON": "':'",
    "COMMA": "','",
    "DOT": "'.'",
    "DBLQUOTE": "a quote",
    "NAME": "a name",
    "NL_OR_COMMENT": "a new line",
    "INT_LITERAL": "a number",
    "FLOAT_LITERAL": "a number",
    "STRING_CHARS": "text",
    "QMARK": "'?'",
    "INTERP_START": "'${'",
    "DIRECTIVE_START": "'%{'",
    "HEREDOC_TEMPLATE": "a heredoc",
    "HEREDOC_TEMPLATE_TRIM": "a heredoc",
    "$END": "the end of the file",
}


@dataclass(frozen=True, slots=True)
class SourceText:
    """The text a tree was parsed from, and where that text stands in its file.

    Heredoc interpolations are parsed on their own, so their trees count lines and columns from the start of the
    expression; `line` and `column` shift those back to file positions.
    """

    filename: str
    text: str
    line: int = 1
    column: int = 1

    def pos(self, line: int, column: int) -> SourcePos:
        """A file position for a (1-based) line and column of `text`."""
        if line <= 1:
            return SourcePos(self.filename, self.line, self.column + max(column, 1) - 1)
        return SourcePos(self.filename, self.line + line - 1, column)

    def node_pos(self, node: Tree[Token] | Token) -> SourcePos:
        """Where a tree node or token starts."""
        if isinstance(node, Token):
            return self.pos(node.line or 1, node.column or 1)
        meta = node.meta
        if getattr(meta, "empty", True):
            for child in node.children:
                if isinstance(child, Tree | Token):
                    return self.node_pos(child)
            return SourcePos(self.filename, self.line, self.column)
        return self.pos(meta.line, meta.column)

    def node_text(self, node: Tree[Token] | Token) -> str:
        """The exact source text of a node."""
        if isinstance(node, Token):
            return str(node)
        meta = node.meta
        if getattr(meta, "empty", True):
            return ""
        return self.text[meta.start_pos : meta.end_pos]


@dataclass(frozen=True, slots=True)
class Expr:
    """An expression tree together with the text it came from (for positions and verbatim passthrough)."""

    node: Tree[Token] | Token
    source: SourceText

    @property
    def pos(self) -> SourcePos:
        return self.source.node_pos(self.node)

    @property
    def text(self) -> str:
        return self.source.node_text(self.node)


def _grammar_text() -> str:
    grammar = (Path(hcl2.__file__).parent / "hcl2.lark").read_text(encoding="utf-8")
    if _INTERPOLATION_RULE not in grammar:
        raise RuntimeError(
            "python-hcl2's grammar changed: the interpolation rule is not where nomad_operator expects it; "
            "check nomad_operator/jobspec/hcl_tree.py against the installed python-hcl2"
        )
    return grammar.replace(_INTERPOLATION_RULE, _INTERPOLATION_WITH_STRIP)


@functools.cache
def parser() -> Lark:
    """The LALR parser: python-hcl2's grammar plus strip markers, with positions, for files and lone expressions."""
    return Lark(
        _grammar_text(),
        parser="lalr",
        propagate_positions=True,
        postlex=PostLexer(),
        start=["start", "expression"],
        cache=True,
    )


def warm_parser() -> None:
    """Build the parser (and its cache file) now, e.g. during an image build, rather than on the first job file."""
    parser()


class _LruCache:
    """A small thread-safe LRU map; parse results are immutable, so sharing them is safe."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Tree[Token]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Tree[Token] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: Tree[Token]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_FILE_TREES = _LruCache(TREE_CACHE_SIZE)
_EXPRESSION_TREES = _LruCache(TREE_CACHE_SIZE * 4)


def parse_file(text: str, *, filename: str) -> tuple[Tree[Token], SourceText]:
    """Parse a whole file into its `start` tree; raises JobspecError with a position on a syntax error."""
    # The grammar needs a final newline after the last attribute, as python-hcl2 itself adds.
    padded = text if text.endswith("\n") else text + "\n"
    source = SourceText(filename, padded)
    key = hashlib.sha256(padded.encode("utf-8", "surrogatepass")).hexdigest()
    tree = _FILE_TREES.get(key)
    if tree is None:
        tree = _parse(padded, start="start", source=source)
        _FILE_TREES.put(key, tree)
    return tree, source


def subtrees(node: Tree[Token]) -> list[Tree[Token]]:
    """The child trees of a node, without layout (new lines and comments)."""
    return [child for child in node.children if isinstance(child, Tree) and child.data != "new_line_or_comment"]


def child_token(node: Tree[Token], token_type: str) -> Token | None:
    """The first token of this type among a node's direct children (`...` in a call or a `for`), or None."""
    for child in node.children:
        if isinstance(child, Token) and child.type == token_type:
            return child
    return None


def body_of(tree: Tree[Token]) -> Tree[Token]:
    """The `body` tree of a parsed file."""
    body = tree.children[0]
    assert isinstance(body, Tree)
    assert body.data == "body"
    return body


def parse_expression(text: str, *, source: SourceText) -> Tree[Token] | Token:
    """Parse one expression (from a heredoc interpolation, a directive or a -var value).

    `source` says where the text stands in its file, for error positions.
    """
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    tree = _EXPRESSION_TREES.get(key)
    if tree is None:
        parsed = _parse(text, start="expression", source=source)
        # Lark returns the inlined child for `?expression`; wrap tokens so the cache holds trees only.
        tree = parsed if isinstance(parsed, Tree) else Tree("expr_term", [parsed])
        _EXPRESSION_TREES.put(key, tree)
    return tree


def _parse(text: str, *, start: str, source: SourceText) -> Tree[Token]:
    try:
        result: Tree[Token] | Token = parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise syntax_error(exc, source) from None
    if isinstance(result, Token):
        return Tree("expr_term", [result])
    return result


def syntax_error(exc: UnexpectedInput, source: SourceText) -> JobspecError:
    """A lark exception as a readable message with the file position."""
    line = getattr(exc, "line", 0) or 0
    column = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        found = "the end of the file" if token.type == "$END" else _describe_token(token)
        expected = sorted({_TERMINAL_WORDS.get(name, name.lower()) for name in exc.expected})
        hint = f"; expected {_one_of(expected)}" if expected and len(expected) <= 8 else ""
        message = f"Syntax error: unexpected {found}{hint}"
        if token.type == "$END":
            line, column = _last_line_column(source.text)
    elif isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream if isinstance(exc.pos_in_stream, int) else -1
        char = source.text[offset] if 0 <= offset < len(source.text) else "?"
        message = f"Syntax error: invalid character {char!r}"
        if char == "\\":
            message += " (backslash escapes belong inside quoted strings)"
    elif isinstance(exc, UnexpectedEOF):
        message = "Syntax error: the file ends in the middle of an expression or block"
        line, column = _last_line_column(source.text)
    else:
        message = f"Syntax error: {exc}"
    return JobspecError(message, source.pos(line, column) if line else SourcePos(source.filename))


def _describe_token(token: Token) -> str:
    value = str(token)
    if token.type == "NL_OR_COMMENT":
        return "new line" if value.strip() == "" else "comment"
    if value.lstrip(" \t").startswith(("\n", "\r")):
        return "end of line"
    value = value.split("\n", 1)[0]
    if len(value) > 40:
        value = value[:37] + "..."
    return repr(value)


def _one_of(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return "one of " + ", ".join(words)


def _last_line_column(text: str) -> tuple[int, int]:
    stripped = text.rstrip("\n")
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column
