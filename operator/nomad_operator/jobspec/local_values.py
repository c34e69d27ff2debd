"""Locals: `locals { a = ... }` blocks, evaluated in dependency order whatever order they are written in.

Why: jobspec2 retries locals until they stop failing, so a local may use another defined later, and a cycle shows
up only as a confusing "unknown local" after a hundred retries. Here the dependencies are read from the tree first,
locals are evaluated depth-first, a cycle is one error naming every local in it, and a local whose input failed is
not reported again (its dependents fail quietly; the first error says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nomad_operator.jobspec.bodies import RawAttribute, RawBlock
from nomad_operator.jobspec.errors import JobspecError
from nomad_operator.jobspec.expressions import Evaluator
from nomad_operator.jobspec.hcl_types import Value
from nomad_operator.jobspec.references import references
from nomad_operator.jobspec.scope import FAILED, Scope, report


def evaluate_locals(
    locals_blocks: Sequence[RawBlock], scope_for: Callable[[dict[str, Value]], Scope], errors: list[JobspecError]
) -> dict[str, Value]:
    """Evaluate every local in dependency order; cycles and failures go to `errors`, dependents are skipped."""
    definitions: dict[str, RawAttribute] = {}
    for block in locals_blocks:
        for nested in block.body.blocks:
            errors.append(
                JobspecError(
                    f'Unexpected "{nested.type}" block in locals: only name = value assignments are allowed', nested.pos
                )
            )
        for name, attribute in block.body.attributes.items():
            if name in definitions:
                errors.append(
                    JobspecError(
                        f'Duplicate local "{name}": it is already defined at line {definitions[name].pos.line}',
                        attribute.pos,
                    )
                )
                continue
            definitions[name] = attribute
    depends = {
        name: {attr for root, attr in references(attribute.expr.node) if root == "local" and attr in definitions}
        for name, attribute in definitions.items()
    }
    values: dict[str, Value] = {}
    failed: set[str] = set()
    state: dict[str, str] = {}
    evaluator = Evaluator()

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            errors.append(
                JobspecError(
                    "Cycle in local values: " + " -> ".join(f"local.{n}" for n in cycle), definitions[name].pos
                )
            )
            failed.update(cycle)
            return
        state[name] = "visiting"
        for dependency in sorted(depends[name]):
            visit(dependency, [*path, name])
        state[name] = "done"
        if name in failed or depends[name] & failed:
            failed.add(name)
            return
        try:
            values[name] = evaluator.evaluate(definitions[name].expr, scope_for(values))
        except JobspecError as exc:
            report(errors, exc)
            failed.add(name)

    for name in definitions:
        visit(name, [])
    values.update(dict.fromkeys(failed, FAILED))
    return values
