"""Input variables and locals, as jobspec2 gathers them (types.variables.go, types.config.go).

Why: variables are where a job file meets the outside world (the CLI's `-var`, var files, `NOMAD_VAR_*`), so this
is where bad input arrives. Each rule is Nomad's:
- precedence: default < NOMAD_VAR_* < var files (in order) < -var;
- a `-var` or env value is a literal string for `string`, `number` and untyped variables (then converted), and is
  parsed as an HCL expression for every other type;
- a variable with no value at all is an error naming it, whether or not the job uses it;
- a value set for an undeclared variable is a warning, or an error in strict mode;
- `validation { condition, error_message }` may refer only to the variable itself, and its message must read as
  a sentence; a failed condition is an error carrying that message;
- locals may refer to each other in any order; a cycle is an error naming the locals in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from nomad_operator.jobspec.bodies import RawAttribute, RawBlock, RawBody, read_body
from nomad_operator.jobspec.errors import JobspecError, SourcePos
from nomad_operator.jobspec.expressions import Evaluator
from nomad_operator.jobspec.functions import validation_functions
from nomad_operator.jobspec.hcl_tree import Expr, SourceText, body_of, parse_expression, parse_file
from nomad_operator.jobspec.hcl_types import ConversionError, HclType, Value, convert, to_bool, to_string, type_of
from nomad_operator.jobspec.references import references
from nomad_operator.jobspec.scope import CONSTANT_SCOPE, FAILED, Scope
from nomad_operator.jobspec.type_expressions import type_from_expression

ENV_PREFIX = "NOMAD_VAR_"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_VARIABLE_ATTRIBUTES = ("description", "default", "type")

Warn = Callable[[JobspecError], None]


@dataclass(slots=True)
class Validation:
    condition: Expr
    error_message: str
    pos: SourcePos


@dataclass(slots=True)
class Variable:
    """One declared input variable and the values it was given, lowest precedence first."""

    name: str
    pos: SourcePos
    type: HclType | None = None
    description: str = ""
    validations: list[Validation] = field(default_factory=list)
    values: list[tuple[str, Value, SourcePos]] = field(default_factory=list)  # (from, value, where)


def declare_variables(
    variable_blocks: Sequence[RawBlock], variables_blocks: Sequence[RawBlock], errors: list[JobspecError]
) -> dict[str, Variable]:
    """Read `variable "x" {}` and `variables {}` blocks into declarations with their defaults."""
    declared: dict[str, Variable] = {}
    evaluator = Evaluator()
    for block in variable_blocks:
        if len(block.labels) != 1:
            errors.append(JobspecError("A variable block needs exactly one label, the variable name", block.pos))
            continue
        name = block.labels[0]
        if name in declared:
            errors.append(
                JobspecError(
                    f'Duplicate variable "{name}": it is already declared at line {declared[name].pos.line}', block.pos
                )
            )
            continue
        if not _IDENTIFIER.fullmatch(name):
            errors.append(
                JobspecError(
                    f'Invalid variable name "{name}": a name starts with a letter or underscore '
                    "and holds only letters, digits, underscores and dashes",
                    block.pos,
                )
            )
        variable = Variable(name, block.pos)
        _read_variable_body(variable, block.body, evaluator, errors)
        declared[name] = variable
    for block in variables_blocks:
        for name, attribute in block.body.attributes.items():
            if name in declared:
                errors.append(
                    JobspecError(
                        f'Duplicate variable "{name}": it is already declared at line {declared[name].pos.line}',
                        attribute.pos,
                    )
                )
                continue
            try:
                value = evaluator.evaluate(attribute.expr, CONSTANT_SCOPE)
            except JobspecError as exc:
                errors.append(exc)
                continue
            declared[name] = Variable(name, attribute.pos, type_of(value), values=[("default", value, attribute.pos)])
        for nested in block.body.blocks:
            errors.append(
                JobspecError(
                    f'Unexpected "{nested.type}" block in variables: only name = value assignments are allowed',
                    nested.pos,
                )
            )
    return declared


def _read_variable_body(variable: Variable, body: RawBody, evaluator: Evaluator, errors: list[JobspecError]) -> None:
    for name, attribute in body.attributes.items():
        if name not in _VARIABLE_ATTRIBUTES:
            errors.append(JobspecError(
                f'Unsupported argument "{name}" in variable "{variable.name}": Nomad accepts only description, '
                "default, type and validation blocks",
                attribute.pos,
            ))  # fmt: skip
    if "description" in body.attributes:
        text = _constant_string(body.attributes["description"], evaluator, errors)
        variable.description = text or ""
    if "type" in body.attributes:
        attribute = body.attributes["type"]
        try:
            variable.type = type_from_expression(attribute.expr.node, attribute.expr.source)
        except JobspecError as exc:
            errors.append(exc)
            return
    if "default" in body.attributes:
        attribute = body.attributes["default"]
        try:
            value = evaluator.evaluate(attribute.expr, CONSTANT_SCOPE)
        except JobspecError as exc:
            errors.append(exc)
            return
        if variable.type is not None:
            try:
                value = convert(value, variable.type)
            except ConversionError as exc:
                errors.append(
                    JobspecError(
                        f'Invalid default value for variable "{variable.name}": it is not '
                        f"compatible with the type {variable.type}: {exc}",
                        attribute.pos,
                    )
                )
                return
        else:
            variable.type = type_of(value)
        variable.values.append(("default", value, attribute.pos))
    for block in body.blocks:
        if block.type != "validation":
            errors.append(JobspecError(f'Unsupported block "{block.type}" in variable "{variable.name}"', block.pos))
            continue
        validation = _read_validation(variable.name, block, evaluator, errors)
        if validation is not None:
            variable.validations.append(validation)


def _constant_string(attribute: RawAttribute, evaluator: Evaluator, errors: list[JobspecError]) -> str | None:
    try:
        value = evaluator.evaluate(attribute.expr, CONSTANT_SCOPE)
        if value is None:
            raise ConversionError("a string is required, but the value is null")
        return to_string(value)
    except ConversionError as exc:
        errors.append(JobspecError(f'Invalid value for "{attribute.name}": {exc}', attribute.pos))
    except JobspecError as exc:
        errors.append(exc)
    return None


def _read_validation(name: str, block: RawBlock, evaluator: Evaluator, errors: list[JobspecError]) -> Validation | None:
    attributes = block.body.attributes
    before = len(errors)
    for required in ("condition", "error_message"):
        if required not in attributes:
            errors.append(
                JobspecError(f'Missing required argument "{required}" in a validation of variable "{name}"', block.pos)
            )
    for extra in set(attributes) - {"condition", "error_message"}:
        errors.append(JobspecError(f'Unsupported argument "{extra}" in a validation block', attributes[extra].pos))
    if len(errors) != before:
        return None
    condition = attributes["condition"]
    found = references(condition.expr.node)
    if not any(reference == ("var", name) for reference in found):
        errors.append(
            JobspecError(
                f'Invalid variable validation condition: the condition for variable "{name}" must refer to var.{name}',
                condition.pos,
            )
        )
    for reference in found:
        if reference != ("var", name):
            errors.append(
                JobspecError(
                    f'Invalid reference in variable validation: the condition for "{name}" can '
                    f"refer only to var.{name}, not {'.'.join(filter(None, reference))}",
                    condition.pos,
                )
            )
    message = _constant_string(attributes["error_message"], evaluator, errors)
    if message is None:
        return None
    if not message:
        errors.append(
            JobspecError(
                "Invalid validation error message: an empty string is not a useful message",
                attributes["error_message"].pos,
            )
        )
        return None
    first, last = message[0], message[-1]
    if (first.isalpha() and not first.isupper()) or last not in ".?!":
        errors.append(JobspecError(
            "Invalid validation error message: it must be at least one full sentence, starting with an uppercase "
            "letter and ending with a period or question mark",
            attributes["error_message"].pos,
        ))  # fmt: skip
        return None
    return Validation(condition.expr, message, block.pos)


def _value_from_text(name: str, text: str, kind: HclType | None, origin: str) -> tuple[Value, JobspecError | None]:
    """A `-var` or NOMAD_VAR_ value: a literal string for string/number/untyped, an HCL expression otherwise."""
    where = SourcePos(f"<value for var.{name} from {origin}>", 1, 1)
    if kind is None or kind.kind in ("string", "number"):
        value: Value = text
    else:
        source = SourceText(where.file, text)
        try:
            value = Evaluator().evaluate(Expr(parse_expression(text, source=source), source), CONSTANT_SCOPE)
        except JobspecError as exc:
            return None, exc
    if kind is not None:
        try:
            value = convert(value, kind)
        except ConversionError as exc:
            return None, JobspecError(
                f'Invalid value for variable "{name}" from {origin}: it is not compatible with the type {kind}: {exc}',
                where,
            )
    return value, None


def collect_values(
    declared: Mapping[str, Variable],
    *,
    environ: Mapping[str, str],
    var_files: Sequence[tuple[str, str]],
    variables: Mapping[str, str],
    strict: bool,
    errors: list[JobspecError],
    warn: Warn,
) -> None:
    """Add the env, var-file and -var values to the declarations, in Nomad's order of precedence."""
    undeclared = errors.append if strict else warn
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or key[len(ENV_PREFIX) :] not in declared:
            continue
        name = key[len(ENV_PREFIX) :]
        value, problem = _value_from_text(name, environ[key], declared[name].type, "environment")
        if problem is not None:
            errors.append(problem)
        else:
            declared[name].values.append(("env", value, SourcePos(f"<environment {key}>")))
    for filename, text in var_files:
        _read_var_file(declared, filename, text, errors, undeclared)
    for name, text in variables.items():
        if name not in declared:
            undeclared(
                JobspecError(
                    f'Undefined -var variable "{name}": it was given on the command line but the '
                    "job file declares no such variable",
                    SourcePos("<-var arguments>"),
                )
            )
            continue
        value, problem = _value_from_text(name, text, declared[name].type, "-var")
        if problem is not None:
            errors.append(problem)
        else:
            declared[name].values.append(("-var", value, SourcePos(f"<value for var.{name} from -var>")))


def _read_var_file(
    declared: Mapping[str, Variable], filename: str, text: str, errors: list[JobspecError], undeclared: Warn
) -> None:
    try:
        tree, source = parse_file(text, filename=filename)
    except JobspecError as exc:
        errors.append(exc)
        return
    body = read_body(body_of(tree), source, errors)
    for block in body.blocks:
        if block.type == "variable":
            errors.append(
                JobspecError(
                    f"Variable declaration in a var file: a var file assigns values (name = value)"
                    f'; declare "{"".join(block.labels[:1])}" in the job file',
                    block.pos,
                )
            )
        else:
            errors.append(
                JobspecError(
                    f'Unexpected "{block.type}" block in a var file: only name = value assignments are allowed',
                    block.pos,
                )
            )
    evaluator = Evaluator()
    for name, attribute in body.attributes.items():
        variable = declared.get(name)
        if variable is None:
            undeclared(
                JobspecError(
                    f'Undefined variable "{name}": it is set in a var file but the job file declares no such variable',
                    attribute.pos,
                )
            )
            continue
        try:
            value = evaluator.evaluate(attribute.expr, CONSTANT_SCOPE)
            if variable.type is not None:
                value = convert(value, variable.type)
        except ConversionError as exc:
            errors.append(
                JobspecError(
                    f'Invalid value for variable "{name}": it is not compatible with the type {variable.type}: {exc}',
                    attribute.pos,
                )
            )
            continue
        except JobspecError as exc:
            errors.append(exc)
            continue
        variable.values.append(("var file", value, attribute.pos))


def final_values(declared: Mapping[str, Variable], errors: list[JobspecError]) -> dict[str, Value]:
    """Each variable's winning value, validated; unset variables and failed validations go to `errors`."""
    result: dict[str, Value] = {}
    evaluator = Evaluator()
    for name, variable in declared.items():
        if not variable.values:
            errors.append(
                JobspecError(
                    f'Unset variable "{name}": a variable must be set (-var, a var file or '
                    f"{ENV_PREFIX}{name}) or have a default value",
                    variable.pos,
                )
            )
            result[name] = FAILED
            continue
        origin, value, where = variable.values[-1]
        result[name] = value
        scope = Scope({"var": {name: value}}, validation_functions())
        for validation in variable.validations:
            try:
                outcome = evaluator.evaluate(validation.condition, scope)
                if outcome is None:
                    raise ConversionError("the condition is null; it must be true or false")
                passed = to_bool(outcome)
            except ConversionError as exc:
                errors.append(JobspecError(f"Invalid variable validation result: {exc}", validation.pos))
                continue
            except JobspecError as exc:
                errors.append(exc)
                continue
            if not passed:
                errors.append(JobspecError(
                    f'Invalid value for {origin} variable "{name}": {validation.error_message} (checked by the '
                    f"validation rule at line {validation.pos.line})",
                    where,
                ))  # fmt: skip
    return result
