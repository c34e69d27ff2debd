"""Variables and locals: types, defaults, -var, var files, NOMAD_VAR_*, precedence, validation, cycles."""

from __future__ import annotations

import pytest

from nomad_operator.jobspec.errors import JobspecError, JobspecErrors
from nomad_operator.jobspec.evaluate import evaluate_source

DECLARATIONS = """
variable "s" {
  type    = string
  default = "d"
}
variable "n" {
  type = number
  default = 1
}
variable "b" {
  type = bool
  default = false
}
variable "l" {
  type    = list(string)
  default = [1, "a"]
}
variable "m" {
  type    = map(number)
  default = { a = "2" }
}
variable "o" {
  type    = object({ name = string, port = number })
  default = { name = "web", port = "80", extra = true }
}
variable "t" {
  type    = tuple([string, bool])
  default = ["x", "true"]
}
variable "st" {
  type    = set(string)
  default = ["b", "a", "b"]
}
variable "any" {
  type    = any
  default = { k = [1] }
}
"""


def job_values(text: str, **options: object) -> dict[str, object]:
    root = evaluate_source(text, filename="v.nomad", **options)  # type: ignore[arg-type]
    return {name: attribute.value for name, attribute in root.blocks_of("job")[0].attributes.items()}


def with_job(declarations: str, body: str) -> str:
    return f'{declarations}\njob "j" {{\n{body}\n}}\n'


def errors_of(text: str, **options: object) -> list[str]:
    with pytest.raises(JobspecErrors) as caught:
        evaluate_source(text, filename="v.nomad", **options)  # type: ignore[arg-type]
    return [str(error) for error in caught.value.errors]


ALL = "\n".join(f"  {name} = var.{name}" for name in ("s", "n", "b", "l", "m", "o", "t", "st", "any"))


def test_defaults_are_converted_by_type() -> None:
    assert job_values(with_job(DECLARATIONS, ALL)) == {
        "s": "d", "n": 1, "b": False, "l": ["1", "a"], "m": {"a": 2}, "o": {"name": "web", "port": 80},
        "t": ["x", True], "st": ["a", "b"], "any": {"k": [1]},
    }  # fmt: skip


def test_minus_var_strings_are_converted_by_type() -> None:
    variables = {"s": "text", "n": "42", "b": "true", "l": '["x", "y"]', "m": "{ z = 3 }", "st": '["q"]'}
    values = job_values(with_job(DECLARATIONS, ALL), variables=variables)
    assert values["s"] == "text"
    assert values["n"] == 42
    assert values["b"] is True
    assert values["l"] == ["x", "y"]
    assert values["m"] == {"z": 3}
    assert values["st"] == ["q"]


def test_precedence_default_env_varfile_minus_var() -> None:
    text = with_job(
        'variable "a" {\n  default = "default"\n}\nvariable "b" {}\nvariable "c" {}', "a = var.a\nb = var.b\nc = var.c"
    )
    environ = {"NOMAD_VAR_a": "env", "NOMAD_VAR_b": "env", "NOMAD_VAR_c": "env", "OTHER": "x"}
    var_files = [("one.hcl", 'b = "file1"\nc = "file1"'), ("two.hcl", 'c = "file2"')]
    assert job_values(text, environ=environ) == {"a": "env", "b": "env", "c": "env"}
    assert job_values(text, environ=environ, var_files=var_files) == {"a": "env", "b": "file1", "c": "file2"}
    assert job_values(text, environ=environ, var_files=var_files, variables={"a": "cli", "c": "cli"}) == {
        "a": "cli", "b": "file1", "c": "cli",
    }  # fmt: skip


def test_variables_block_declares_with_default_and_inferred_type() -> None:
    text = with_job('variables {\n  r = "default"\n  n = 3\n}', "region = var.r\ncount = var.n")
    assert job_values(text) == {"region": "default", "count": 3}
    assert job_values(text, variables={"n": "7"}) == {"region": "default", "count": 7}


def test_unset_variable_is_an_error_naming_it_even_when_unused() -> None:
    messages = errors_of(with_job('variable "needed" {}\nvariable "unused" {}', "a = var.needed"))
    assert len(messages) == 2
    assert 'Unset variable "needed"' in messages[0]
    assert 'Unset variable "unused"' in messages[1]


@pytest.mark.parametrize(
    ("declarations", "options", "message"),
    [
        ('variable "n" {\n  type = number\n}', {"variables": {"n": "abc"}}, 'Invalid value for variable "n"'),
        ('variable "n" {\n  type = number\n  default = "x"\n}', {}, 'Invalid default value for variable "n"'),
        ('variable "l" {\n  type = list(string)\n}', {"variables": {"l": "[1,"}}, "Syntax error"),
        ('variable "o" {\n  type = object({a = string})\n  default = {}\n}', {}, 'attribute "a" is required'),
        ('variable "x" {\n  type = "string"\n}', {}, "Invalid type specification"),
        ('variable "x" {\n  type = list\n}', {}, "requires an argument"),
        ('variable "x" {\n  sensitive = true\n  default = 1\n}', {}, 'Unsupported argument "sensitive"'),
        ('variable "x" {\n  default = var.y\n}', {}, "Variables not allowed"),
        ('variable "x" {\n  default = upper("a")\n}', {}, "Function calls not allowed"),
        ('variable "x" {\n  default = 1\n}\nvariable "x" {\n  default = 2\n}', {}, 'Duplicate variable "x"'),
        ('variable "a" "b" {}', {}, "exactly one label"),
        ('variable "x" {}', {"var_files": [("f.hcl", 'variable "x" {}')]}, "Variable declaration in a var file"),
        ('variable "x" {}', {"var_files": [("f.hcl", "x = ")]}, "f.hcl:1"),
        ('variable "x" {\n  default = 1\n}', {"variables": {"y": "1"}, "strict": True}, 'Undefined -var variable "y"'),
    ],
)
def test_bad_variable_input_names_the_problem(declarations: str, options: dict[str, object], message: str) -> None:
    messages = errors_of(with_job(declarations, ""), **options)
    assert any(message in text for text in messages), messages


def test_undeclared_values_are_warnings_outside_strict_mode() -> None:
    warnings: list[JobspecError] = []
    text = with_job('variable "x" {\n  default = 1\n}', "a = var.x")
    values = job_values(text, variables={"y": "1"}, var_files=[("f.hcl", "z = 2")], on_warning=warnings.append)
    assert values == {"a": 1}
    assert sorted(w.message.split('"')[1] for w in warnings) == ["y", "z"]


VALIDATED = """
variable "port" {
  type = number
  default = 80
  validation {
    condition     = var.port > 0 && var.port < 65536
    error_message = "The port must be between 1 and 65535."
  }
}
"""


def test_validation_passes_and_fails_with_its_message() -> None:
    assert job_values(with_job(VALIDATED, "p = var.port")) == {"p": 80}
    messages = errors_of(with_job(VALIDATED, "p = var.port"), variables={"port": "70000"})
    assert len(messages) == 1
    assert "The port must be between 1 and 65535." in messages[0]
    assert 'variable "port"' in messages[0]


@pytest.mark.parametrize(
    ("validation", "message"),
    [
        ('condition = var.other > 1\n    error_message = "Bad value."', "can refer only to var.v"),
        ('condition = true\n    error_message = "Bad value."', "must refer to var.v"),
        ('condition = var.v > 1\n    error_message = "lowercase and no period"', "full sentence"),
        ('condition = var.v > 1\n    error_message = ""', "empty string"),
        ('error_message = "Bad."', 'Missing required argument "condition"'),
    ],
)
def test_bad_validation_blocks(validation: str, message: str) -> None:
    declarations = f'variable "v" {{\n  default = 5\n  validation {{\n    {validation}\n  }}\n}}'
    messages = errors_of(with_job(declarations, ""))
    assert any(message in text for text in messages), messages


def test_locals_in_any_order_with_variables() -> None:
    text = with_job(
        'variable "env" {\n  default = "prod"\n}\n'
        'locals {\n  c = "${local.b}-c"\n}\nlocals {\n  b = "${local.a}-b"\n  a = var.env\n}',
        "v = local.c",
    )
    assert job_values(text) == {"v": "prod-b-c"}


def test_local_cycle_is_an_error_naming_the_locals() -> None:
    messages = errors_of(with_job("locals {\n  a = local.b\n  b = local.c\n  c = local.a\n}", "v = local.a"))
    assert len(messages) == 1
    assert "Cycle in local values" in messages[0]
    assert all(f"local.{name}" in messages[0] for name in "abc")


def test_duplicate_local_is_an_error() -> None:
    messages = errors_of(with_job("locals {\n  a = 1\n}\nlocals {\n  a = 2\n}", "v = local.a"))
    assert any('Duplicate local "a"' in text for text in messages)


def test_a_failed_local_is_reported_once_not_by_every_reference() -> None:
    messages = errors_of(with_job("locals {\n  a = 1 / 0\n  b = local.a\n}", "v = local.a\nw = local.b"))
    assert len(messages) == 1
    assert "Division by zero" in messages[0]
