"""Entry points of the HCL2 evaluator: job file text in, the evaluated `Block` tree out (or every error at once).

Why: this is jobspec2's `decode` minus the job schema. It parses with python-hcl2's grammar, reads `variable`,
`variables` and `locals` blocks, gathers values from defaults, `NOMAD_VAR_*`, var files and `-var` (in that order of
precedence), evaluates locals in dependency order, then evaluates every other top-level block (normally the one
`job`) with `dynamic` blocks expanded. Whether the result is a valid job is the mapper's question.

Hazards handled: bad input never raises half-way with one message; every problem found in the pass is collected
into one `JobspecErrors`, sorted by position, so `validate` lists them all. Nothing is dropped: top-level attributes
or unknown blocks are passed through for the mapper to reject by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nomad_operator.jobspec.bodies import BodyEvaluator, ObjectLiteral, RawBlock, read_body
from nomad_operator.jobspec.body import Attribute, Block
from nomad_operator.jobspec.errors import JobspecError, JobspecErrors, SourcePos
from nomad_operator.jobspec.expressions import Evaluator
from nomad_operator.jobspec.functions import nomad_functions
from nomad_operator.jobspec.hcl_tree import body_of, parse_file, warm_parser
from nomad_operator.jobspec.hcl_types import Value
from nomad_operator.jobspec.local_values import evaluate_locals
from nomad_operator.jobspec.scope import Scope
from nomad_operator.jobspec.variables import collect_values, declare_variables, final_values

__all__ = ["ObjectLiteral", "WarningSink", "evaluate_file", "evaluate_source", "warm_parser"]

_NO_STRINGS: Mapping[str, str] = {}
_FILE_LEVEL_BLOCKS = ("variable", "variables", "locals")


class WarningSink(Protocol):
    """Receives what Nomad only warns about (a value given for an undeclared variable, outside strict mode)."""

    def __call__(self, warning: JobspecError) -> None: ...


def _ignore(warning: JobspecError) -> None:
    """Nomad's CLI drops these warnings silently unless -strict is given; so do we by default."""


def evaluate_source(
    text: str,
    *,
    filename: str,
    variables: Mapping[str, str] = _NO_STRINGS,
    var_files: Sequence[tuple[str, str]] = (),
    environ: Mapping[str, str] = _NO_STRINGS,
    base_dir: Path | None = None,
    root_dir: Path | None = None,
    allow_fs: bool = True,
    strict: bool = False,
    on_warning: WarningSink | None = None,
) -> Block:
    """Evaluate one job file's text; raises JobspecErrors listing every problem found.

    `variables` are `-var` values (raw strings, converted by each variable's type), `var_files` are
    (filename, HCL text) pairs applied in order, `environ` supplies `NOMAD_VAR_<name>`. File functions read relative
    to `base_dir` (default: the folder of `filename`) and never outside `root_dir`; with `allow_fs=False` they fail as
    in Nomad's `/v1/jobs/parse`. `strict` turns values for undeclared variables from warnings into errors.
    """
    errors: list[JobspecError] = []
    warn: WarningSink = on_warning or _ignore
    try:
        tree, source = parse_file(text, filename=filename)
    except JobspecError as exc:
        raise JobspecErrors([exc]) from None
    body = read_body(body_of(tree), source, errors)

    by_type: dict[str, list[RawBlock]] = {kind: [] for kind in _FILE_LEVEL_BLOCKS}
    for block in body.blocks:
        if block.type in by_type:
            by_type[block.type].append(block)
    declared = declare_variables(by_type["variable"], by_type["variables"], errors)
    collect_values(
        declared,
        environ=environ,
        var_files=var_files,
        variables=variables,
        strict=strict,
        errors=errors,
        warn=warn,
    )
    values = final_values(declared, errors)

    functions = nomad_functions(
        base_dir=base_dir if base_dir is not None else Path(filename).parent,
        root_dir=root_dir,
        allow_fs=allow_fs,
    )

    def scope_with(locals_so_far: dict[str, Value]) -> Scope:
        return Scope({"var": values, "local": locals_so_far}, functions)

    local_values = evaluate_locals(by_type["locals"], scope_with, errors)
    scope = scope_with(local_values)

    bodies = BodyEvaluator(Evaluator(), errors)
    root = Block("", (), SourcePos(filename, 1, 1))
    for name, attribute in body.attributes.items():
        ok, value = bodies.attribute_value(attribute, scope)
        if ok:
            root.attributes[name] = Attribute(name, value, attribute.pos)
    for block in body.blocks:
        if block.type in _FILE_LEVEL_BLOCKS:
            continue
        if block.type == "dynamic":
            errors.append(JobspecError("A dynamic block is not allowed at the top level of a job file", block.pos))
            continue
        root.blocks.append(bodies.block(block, scope))
    if errors:
        raise JobspecErrors(errors)
    return root


def evaluate_file(
    path: Path,
    *,
    variables: Mapping[str, str] = _NO_STRINGS,
    var_files: Sequence[tuple[str, str]] = (),
    environ: Mapping[str, str] = _NO_STRINGS,
    root_dir: Path | None = None,
    allow_fs: bool = True,
    strict: bool = False,
    on_warning: WarningSink | None = None,
) -> Block:
    """Read and evaluate a job file; file functions are relative to its folder. Unreadable files are JobspecErrors."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise JobspecErrors([JobspecError(f"Cannot read the job file: {exc.strerror}", SourcePos(str(path)))]) from None
    except UnicodeDecodeError as exc:
        raise JobspecErrors(
            [JobspecError(f"The job file is not valid UTF-8 (byte {exc.start})", SourcePos(str(path)))]
        ) from None
    return evaluate_source(
        text,
        filename=str(path),
        variables=variables,
        var_files=var_files,
        environ=environ,
        base_dir=path.parent,
        root_dir=root_dir,
        allow_fs=allow_fs,
        strict=strict,
        on_warning=on_warning,
    )
