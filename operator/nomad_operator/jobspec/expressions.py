"""The HCL2 expression evaluator: python-hcl2's lark tree in, a plain Python value out, the way hclsyntax does it.

Why: python-hcl2 parses but evaluates nothing. Nomad's jobspec2 evaluates with hclsyntax plus one fork-specific
rule, and the job we send must be the job Nomad would build, so the semantics here follow hclsyntax (spec.md):
arithmetic and comparison convert operands by type, `for` iterates maps in key order, splats turn a non-list into
a one-element list, conditionals unify their result types, object keys written bare are literal names.

The hazard this module exists for is Nomad's passthrough rule: a reference whose root is not `var`, `local`, an
iterator or a `for` variable (`attr.kernel.name`, `node.unique.id`, `meta.rack`, `NOMAD_ALLOC_ID`, `env["X"]`) is
a runtime interpolation. It evaluates to its own source text wrapped in `${...}`, so Nomad's client fills it in
later; evaluating it now, or failing on it, would break the job. Function calls are evaluated by `function_calls`.
"""

from __future__ import annotations

from collections.abc import Callable

from lark import Token, Tree

from nomad_operator.jobspec.function_calls import call_function
from nomad_operator.jobspec.hcl_tree import Expr, SourceText, child_token, subtrees
from nomad_operator.jobspec.hcl_types import (
    ConversionError,
    Value,
    iteration_pairs,
    normalize_number,
    to_bool,
    to_string,
    type_name,
    values_equal,
)
from nomad_operator.jobspec.heredocs import template_from_heredoc
from nomad_operator.jobspec.operators import arithmetic, index_value, operand_bool, operand_number
from nomad_operator.jobspec.references import bare_identifier, static_traversal_root
from nomad_operator.jobspec.scope import FAILED, DependentError, EvalError, Scope
from nomad_operator.jobspec.templates import evaluate_template, template_from_string_node


class Evaluator:
    """Evaluates expressions; one instance serves a whole file (it holds no per-expression state)."""

    def evaluate(self, expr: Expr, scope: Scope) -> Value:
        return self._eval(expr.node, expr.source, scope)

    def is_runtime_reference(self, expr: Expr, scope: Scope) -> bool:
        """True when the expression is a plain reference whose root Nomad leaves for the client to fill in."""
        root = static_traversal_root(expr.node)
        return root is not None and scope.references_allowed and root not in scope.names

    # --- dispatch ---------------------------------------------------------------------------------------------------

    def _eval(self, node: Tree[Token] | Token, source: SourceText, scope: Scope) -> Value:
        if isinstance(node, Token):
            raise EvalError(f"Unexpected token {str(node)!r} in expression", source.node_pos(node))
        handler = self._handlers.get(node.data)
        if handler is None:
            raise EvalError(f"Unsupported expression {node.data!r}", source.node_pos(node))
        return handler(self, node, source, scope)

    def _expr_term(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        inner = subtrees(node)
        if len(inner) != 1:
            raise EvalError("Malformed expression", source.node_pos(node))
        return self._eval(inner[0], source, scope)

    def _literal_value(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        word = str(node.children[0])
        return {"true": True, "false": False, "null": None}[word]

    def _int_lit(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        return int(str(node.children[0]))

    def _float_lit(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        return normalize_number(float(str(node.children[0])))

    def _string(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        return evaluate_template(template_from_string_node(node, source), scope, self)

    def _heredoc(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        token = node.children[0]
        assert isinstance(token, Token)
        return evaluate_template(template_from_heredoc(token, source), scope, self)

    def _template_string(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        raise EvalError('Unsupported escaped-quote string \\"...\\" outside a quoted string', source.node_pos(node))

    def _tuple(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        return [self._eval(item, source, scope) for item in subtrees(node)]

    def _object(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        result: dict[str, Value] = {}
        for element in subtrees(node):
            key_node, value_node = subtrees(element)
            key = self._object_key(key_node, source, scope)
            result[key] = self._eval(value_node, source, scope)
        return result

    def _object_key(self, key_node: Tree[Token], source: SourceText, scope: Scope) -> str:
        inner = subtrees(key_node)
        if not inner:  # a keyword such as `in` or `for` used as a key
            return str(key_node.children[0]) if key_node.children else ""
        term = inner[0]
        if term.data == "keyword":
            return str(term.children[0])
        # A bare name is a literal key; `(expr)` or a quoted template is evaluated.
        if term.data == "expr_term" and len(term.children) == 1 and isinstance(term.children[0], Tree):
            only = term.children[0]
            if only.data == "identifier":
                return str(only.children[0])
            if only.data == "literal_value":
                return str(only.children[0])
        key = self._eval(term, source, scope)
        if key is None:
            raise EvalError("Null value as object key: an object key must not be null", source.node_pos(term))
        try:
            return to_string(key)
        except ConversionError as exc:
            raise EvalError(f"Incorrect key type: {exc}", source.node_pos(term)) from None

    # --- references -------------------------------------------------------------------------------------------------

    def _identifier(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        name = str(node.children[0])
        if not scope.references_allowed:
            raise EvalError(f"Variables not allowed: {name!r} cannot be referenced here", source.node_pos(node))
        if name in scope.names:
            return scope.names[name]
        return "${" + name + "}"

    def _traversal(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        root = static_traversal_root(node)
        if root is not None and scope.references_allowed and root not in scope.names:
            return "${" + source.node_text(node) + "}"
        target_node, step = node.children[0], node.children[1]
        assert isinstance(target_node, Tree)
        assert isinstance(step, Tree)
        target = self._eval(target_node, source, scope)
        if node.data == "get_attr_expr_term":
            return self._get_attr(target, step, target_node, source)
        return self._index(target, step, source, scope)

    def _get_attr(self, target: Value, step: Tree[Token], target_node: Tree[Token], source: SourceText) -> Value:
        name = str(subtrees(step)[0].children[0])
        pos = source.node_pos(step)
        if isinstance(target, dict):
            if name in target:
                value = target[name]
                if value is FAILED:
                    raise DependentError(f'"{name}" could not be evaluated', pos)
                return value
            root = bare_identifier(target_node)
            if root == "var":
                raise EvalError(f'Unknown variable "{name}": there is no variable "{name}" declared', pos)
            if root == "local":
                raise EvalError(f'Unknown local value "{name}": there is no local "{name}" in a locals block', pos)
            raise EvalError(f'Unsupported attribute: this object has no attribute named "{name}"', pos)
        if target is None:
            raise EvalError(f'Attempt to get attribute "{name}" from a null value', pos)
        raise EvalError(f'Unsupported attribute "{name}": a {type_name(target)} has no attributes', pos)

    def _index(self, target: Value, step: Tree[Token], source: SourceText, scope: Scope) -> Value:
        pos = source.node_pos(step)
        if step.data == "short_index":
            key: Value = int(str(step.children[-1]))
        else:
            key = self._eval(subtrees(step)[0], source, scope)
        return index_value(target, key, pos)

    def _splat(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        target_node, splat = subtrees(node)
        target = self._eval(target_node, source, scope)
        if target is None:
            return []
        items = target if isinstance(target, list) else [target]
        steps = subtrees(splat)
        outer: list[Tree[Token]] = []
        if node.data == "attr_splat_expr_term":
            # `.*` carries attribute steps only; a following index applies to the resulting list.
            for position, step in enumerate(steps):
                if step.data != "get_attr":
                    steps, outer = steps[:position], steps[position:]
                    break
        results: list[Value] = []
        for item in items:
            for step in steps:
                if step.data == "get_attr":
                    item = self._get_attr(item, step, target_node, source)
                else:
                    item = self._index(item, step, source, scope)
            results.append(item)
        value: Value = results
        for step in outer:
            value = self._index(value, step, source, scope) if step.data != "get_attr" else value
        return value

    # --- operators --------------------------------------------------------------------------------------------------

    def _binary_op(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        left_node, term = subtrees(node)[:2]
        operator_node, right_node = subtrees(term)
        operator = str(operator_node.children[0]).strip()
        left = self._eval(left_node, source, scope)
        pos = source.node_pos(operator_node)
        if operator in ("&&", "||"):
            left_bool = operand_bool(left, operator, source.node_pos(left_node))
            if (operator == "&&" and not left_bool) or (operator == "||" and left_bool):
                return left_bool
            return operand_bool(self._eval(right_node, source, scope), operator, source.node_pos(right_node))
        right = self._eval(right_node, source, scope)
        if operator == "==":
            return values_equal(left, right)
        if operator == "!=":
            return not values_equal(left, right)
        a = operand_number(left, operator, source.node_pos(left_node))
        b = operand_number(right, operator, source.node_pos(right_node))
        return arithmetic(operator, a, b, pos)

    def _unary_op(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        operator = str(node.children[0])
        operand_node = subtrees(node)[0]
        value = self._eval(operand_node, source, scope)
        pos = source.node_pos(operand_node)
        if operator == "!":
            return not operand_bool(value, "!", pos)
        return normalize_number(-operand_number(value, "-", pos))

    def _conditional(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        condition_node, true_node, false_node = subtrees(node)
        condition = self._eval(condition_node, source, scope)
        if condition is None:
            raise EvalError("Null condition: the condition value is null", source.node_pos(condition_node))
        try:
            chosen_is_true = to_bool(condition)
        except ConversionError as exc:
            raise EvalError(f"Incorrect condition type: {exc}", source.node_pos(condition_node)) from None
        chosen, other = (true_node, false_node) if chosen_is_true else (false_node, true_node)
        result = self._eval(chosen, source, scope)
        if isinstance(result, int | float | bool):
            # hclsyntax unifies both result types: `c ? 1 : "a"` yields the string "1".
            try:
                other_value = self._eval(other, source, scope)
            except EvalError:
                return result
            if isinstance(other_value, str):
                return to_string(result)
            if type_name(other_value) in ("number", "bool") and type_name(other_value) != type_name(result):
                raise EvalError(
                    f"Inconsistent conditional result types: {type_name(result)} and {type_name(other_value)}",
                    source.node_pos(node),
                )
        return result

    # --- for expressions --------------------------------------------------------------------------------------------

    def _for(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        parts = subtrees(node)
        intro = parts[0]
        intro_parts = subtrees(intro)
        names = [str(part.children[0]) for part in intro_parts if part.data == "identifier"]
        key_name, value_name = (names[0], names[1]) if len(names) == 2 else (None, names[0])
        collection = self._eval(intro_parts[-1], source, scope)
        condition = parts[-1] if parts[-1].data == "for_cond" else None
        body = parts[1:-1] if condition is not None else parts[1:]
        try:
            pairs = iteration_pairs(collection)
        except ConversionError as exc:
            raise EvalError(f"Iteration over a non-collection: {exc}", source.node_pos(intro_parts[-1])) from None
        is_object = node.data == "for_object_expr"
        grouping = is_object and child_token(node, "ELLIPSIS") is not None
        tuple_result: list[Value] = []
        object_result: dict[str, Value] = {}
        for key, item in pairs:
            names_in_scope: dict[str, Value] = {value_name: item}
            if key_name:
                names_in_scope[key_name] = key
            inner = scope.child(names_in_scope)
            if condition is not None:
                condition_node = subtrees(condition)[0]
                keep = self._eval(condition_node, source, inner)
                try:
                    if not to_bool(keep):
                        continue
                except ConversionError as exc:
                    raise EvalError(f"Invalid for condition: {exc}", source.node_pos(condition_node)) from None
            if not is_object:
                tuple_result.append(self._eval(body[0], source, inner))
                continue
            key_value = self._eval(body[0], source, inner)
            if key_value is None:
                raise EvalError("Invalid object key: the key expression produced null", source.node_pos(body[0]))
            try:
                key_text = to_string(key_value)
            except ConversionError as exc:
                raise EvalError(f"Invalid object key: {exc}", source.node_pos(body[0])) from None
            value = self._eval(body[1], source, inner)
            if grouping:
                object_result.setdefault(key_text, []).append(value)
            elif key_text in object_result:
                raise EvalError(
                    f'Duplicate object key "{key_text}": add "..." after the value to group values by key',
                    source.node_pos(body[0]),
                )
            else:
                object_result[key_text] = value
        return object_result if is_object else tuple_result

    # --- function calls ---------------------------------------------------------------------------------------------

    def _function_call(self, node: Tree[Token], source: SourceText, scope: Scope) -> Value:
        return call_function(node, source, scope, evaluate=self._eval)

    _handlers: dict[str, Callable[[Evaluator, Tree[Token], SourceText, Scope], Value]] = {
        "expr_term": _expr_term,
        "literal_value": _literal_value,
        "int_lit": _int_lit,
        "float_lit": _float_lit,
        "string": _string,
        "heredoc_template": _heredoc,
        "heredoc_template_trim": _heredoc,
        "template_string": _template_string,
        "tuple": _tuple,
        "object": _object,
        "identifier": _identifier,
        "get_attr_expr_term": _traversal,
        "index_expr_term": _traversal,
        "attr_splat_expr_term": _splat,
        "full_splat_expr_term": _splat,
        "binary_op": _binary_op,
        "unary_op": _unary_op,
        "conditional": _conditional,
        "for_tuple_expr": _for,
        "for_object_expr": _for,
        "function_call": _function_call,
    }
