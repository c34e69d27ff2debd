"""Which names an expression refers to, read from the parse tree without evaluating it.

Why: three decisions hang on references, not values. Nomad keeps a reference whose root it does not know as
`${...}` text (so we must see that `attr.kernel.name[0]` is a plain traversal before evaluating anything); locals
must be evaluated in dependency order, and a cycle must be named, not hit as infinite recursion; and a variable's
validation condition may refer only to that variable. `for` variables and bare object keys are not references.
"""

from __future__ import annotations

from lark import Token, Tree

from nomad_operator.jobspec.hcl_tree import subtrees


def bare_identifier(node: Tree[Token]) -> str | None:
    while node.data == "expr_term" and len(node.children) == 1 and isinstance(node.children[0], Tree):
        node = node.children[0]
    if node.data == "identifier":
        return str(node.children[0])
    return None


def static_traversal_root(node: Tree[Token] | Token) -> str | None:
    """The root name when `node` is a static traversal (name, `.attr`, `.0`, `["literal"]`, `[0]`), else None."""
    while isinstance(node, Tree):
        if node.data == "expr_term":
            if len(node.children) != 1:
                return None  # parenthesised
            node = node.children[0]
        elif node.data == "identifier":
            return str(node.children[0])
        elif node.data == "get_attr_expr_term":
            node = node.children[0]
        elif node.data == "index_expr_term":
            step = node.children[1]
            if not isinstance(step, Tree) or (step.data == "braces_index" and not is_literal_key(step)):
                return None
            node = node.children[0]
        else:
            return None
    return None


def is_literal_key(step: Tree[Token]) -> bool:
    inner = subtrees(step)
    if len(inner) != 1:
        return False
    term = inner[0]
    if term.data != "expr_term" or len(term.children) != 1 or not isinstance(term.children[0], Tree):
        return False
    literal = term.children[0]
    if literal.data in ("int_lit", "float_lit"):
        return True
    if literal.data == "string":
        parts = [part for part in literal.children if isinstance(part, Tree)]
        return all(isinstance(part.children[0], Token) and part.children[0].type == "STRING_CHARS" for part in parts)
    return False


def references(node: Tree[Token] | Token) -> list[tuple[str, str | None]]:
    """(root, first attribute) of every variable reference in an expression, minus `for` variables."""
    if not isinstance(node, Tree):
        return []
    for_names = {
        str(child.children[0])
        for intro in node.iter_subtrees() if intro.data == "for_intro"
        for child in intro.children if isinstance(child, Tree) and child.data == "identifier"
    }  # fmt: skip
    found: list[tuple[str, str | None]] = []
    for subtree in node.iter_subtrees():
        if subtree.data == "object_elem_key":
            continue
        for index, child in enumerate(subtree.children):
            if not (isinstance(child, Tree) and child.data == "expr_term" and len(child.children) == 1):
                continue
            only = child.children[0]
            if not (isinstance(only, Tree) and only.data == "identifier") or subtree.data == "object_elem_key":
                continue
            root = str(only.children[0])
            if root in for_names:
                continue
            attribute: str | None = None
            if subtree.data == "get_attr_expr_term" and index == 0:
                step = subtree.children[1]
                if isinstance(step, Tree):
                    attribute = str(next(c for c in step.children if isinstance(c, Tree)).children[0])
            found.append((root, attribute))
    return found
