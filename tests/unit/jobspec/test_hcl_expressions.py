"""The expression evaluator: operators, conditionals, for expressions, splats, indexes and their errors."""

from __future__ import annotations

import pytest

from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.evaluate import evaluate_source


def value(expression: str, *, locals_text: str = "") -> object:
    """Evaluate one expression as the attribute `v` of a job and return its value."""
    text = f'locals {{\n{locals_text}\n}}\njob "j" {{\n  v = {expression}\n}}\n'
    root = evaluate_source(text, filename="test.nomad")
    return root.blocks_of("job")[0].attributes["v"].value


def error(expression: str, *, locals_text: str = "") -> str:
    with pytest.raises(JobspecErrors) as caught:
        value(expression, locals_text=locals_text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("8 / 2", 4),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ('"5" + 1', 6),
        ("-(3)", -3),
        ("1.5e3", 1500),
        ("0.5 + 0.25", 0.75),
        ("1 == 1", True),
        ('1 == "1"', False),
        ("true == 1", False),
        ('[1, "a"] == [1, "a"]', True),
        ("{a = 1} != {a = 2}", True),
        ("3 >= 3 && 2 < 1", False),
        ("false || !false", True),
        ('true ? "yes" : "no"', "yes"),
        ("false ? 1 : 2", 2),
        ('true ? 1 : "a"', "1"),
        ("null", None),
    ],
)
def test_operators_follow_hcl(expression: str, expected: object) -> None:
    result = value(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_for_expressions_cover_lists_maps_filters_and_grouping() -> None:
    assert value('[for s in ["a", "b"] : upper(s)]') == ["A", "B"]
    assert value('[for i, s in ["a", "b"] : "${i}-${s}"]') == ["0-a", "1-b"]
    assert value("[for k, v in {b = 2, a = 1} : k]") == ["a", "b"]
    assert value("[for n in [1, 2, 3, 4] : n if n % 2 == 0]") == [2, 4]
    assert value('{for s in ["x", "y"] : s => upper(s)}') == {"x": "X", "y": "Y"}
    assert value('{for s in ["a1", "a2", "b1"] : substr(s, 0, 1) => s...}') == {"a": ["a1", "a2"], "b": ["b1"]}


def test_for_object_duplicate_key_without_grouping_is_an_error() -> None:
    assert "Duplicate object key" in error('{for s in ["a", "a"] : s => s}')


def test_splats_map_over_lists_and_wrap_single_values() -> None:
    locals_text = 'items = [{name = "a", tags = ["x"]}, {name = "b", tags = ["y"]}]\none = {name = "c"}'
    assert value("local.items[*].name", locals_text=locals_text) == ["a", "b"]
    assert value("local.items.*.name", locals_text=locals_text) == ["a", "b"]
    assert value("local.items[*].tags[0]", locals_text=locals_text) == ["x", "y"]
    assert value("local.items.*.name[1]", locals_text=locals_text) == "b"
    assert value("local.one[*].name", locals_text=locals_text) == ["c"]


def test_index_and_attribute_access() -> None:
    locals_text = 'm = {a = [10, 20]}\nl = ["p", "q"]'
    assert value('local.m["a"][1]', locals_text=locals_text) == 20
    assert value("local.m.a.0", locals_text=locals_text) == 10
    assert value('local.l["1"]', locals_text=locals_text) == "q"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("local.l[5]", "out of range"),
        ('local.m["zz"]', 'no element with the key "zz"'),
        ("local.m.zz", 'no attribute named "zz"'),
        ("1 / 0", "Division by zero"),
        ('"a" + 1', 'Invalid operand for "+"'),
        ("1 && true", 'Invalid operand for "&&"'),
        ("null ? 1 : 2", "Null condition"),
        ("var.nope", 'Unknown variable "nope"'),
        ("local.nope", 'Unknown local value "nope"'),
        ("nosuchfn(1)", 'unknown function "nosuchfn"'),
        ('templatefile("x", {})', "no templatefile()"),
        ('upper("a", "b")', "Wrong number of arguments"),
        ("[for x in 5 : x]", "Iteration over a non-collection"),
    ],
)
def test_bad_expressions_name_the_problem(expression: str, message: str) -> None:
    locals_text = 'm = {a = 1}\nl = ["p"]'
    assert message in error(expression, locals_text=locals_text)


def test_errors_carry_file_line_and_column() -> None:
    with pytest.raises(JobspecErrors) as caught:
        evaluate_source('job "j" {\n  a = 1\n  b = 1 / 0\n}\n', filename="dir/job.nomad")
    [problem] = caught.value.errors
    assert problem.pos is not None
    assert (problem.pos.file, problem.pos.line) == ("dir/job.nomad", 3)
    assert problem.pos.column > 1


def test_several_errors_are_collected_in_one_pass() -> None:
    text = 'job "j" {\n  a = var.x\n  b = 1 / 0\n  group "g" {\n    c = nosuch()\n  }\n}\n'
    with pytest.raises(JobspecErrors) as caught:
        evaluate_source(text, filename="job.nomad")
    assert [e.pos.line for e in caught.value.errors if e.pos] == [2, 3, 5]


def test_runtime_references_stay_as_text() -> None:
    assert value("attr.kernel.name") == "${attr.kernel.name}"
    assert value('"${node.unique.id}"') == "${node.unique.id}"
    assert value('"${env["HOME"]}/x"') == '${env["HOME"]}/x'
    assert value('"a-${NOMAD_ALLOC_INDEX}"') == "a-${NOMAD_ALLOC_INDEX}"
    assert value('"with spaces ${   root.  field[  "FOO"].5  }"') == 'with spaces ${   root.  field[  "FOO"].5  }'
    assert value("upper(meta.rack)") == "${META.RACK}"


def test_object_keys_bare_quoted_and_parenthesised() -> None:
    assert value('{a = 1, "b.c" = 2, (upper("d")) = 3, in = 4}') == {"a": 1, "b.c": 2, "D": 3, "in": 4}


def test_try_and_can_catch_evaluation_errors() -> None:
    assert value('try(local.m.zz, "fallback")', locals_text="m = {}") == "fallback"
    assert value("can(local.m.zz)", locals_text="m = {}") is False
    assert value("can(local.m)", locals_text="m = {}") is True
    assert "no argument that succeeded" in error("try(local.m.zz, local.m.yy)", locals_text="m = {}")


def test_convert_takes_a_type_expression() -> None:
    assert value("convert([1, 2], list(string))") == ["1", "2"]
    assert value('convert(["b", "a", "b"], set(string))') == ["a", "b"]
    assert "Invalid type specification" in error("convert(1, widget)")
