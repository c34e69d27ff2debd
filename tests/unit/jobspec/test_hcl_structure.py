"""Bodies and blocks: dynamic blocks, duplicate attributes, labels, object literals and syntax errors."""

from __future__ import annotations

import pytest

from nomad_operator.jobspec.body import Block
from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.evaluate import ObjectLiteral, evaluate_source


def job(body: str, *, prefix: str = "") -> Block:
    root = evaluate_source(f'{prefix}\njob "j" {{\n{body}\n}}\n', filename="s.nomad")
    return root.blocks_of("job")[0]


def errors_of(text: str) -> list[str]:
    with pytest.raises(JobspecErrors) as caught:
        evaluate_source(text, filename="s.nomad")
    return [str(error) for error in caught.value.errors]


def test_dynamic_blocks_expand_in_place_with_labels_and_iterator() -> None:
    block = job("""
  group "first" {}
  dynamic "group" {
    for_each = { b = 2, a = 1 }
    iterator = g
    labels   = ["g-${g.key}"]
    content {
      count = g.value
    }
  }
  group "last" {}
""")
    groups = block.blocks_of("group")
    assert [group.labels for group in groups] == [("first",), ("g-a",), ("g-b",), ("last",)]
    assert [group.attributes["count"].value for group in groups[1:3]] == [1, 2]


def test_nested_dynamic_blocks_see_outer_iterators() -> None:
    block = job("""
  dynamic "group" {
    for_each = ["a", "b"]
    labels   = [group.value]
    content {
      dynamic "task" {
        for_each = [1, 2]
        labels   = ["${group.value}${task.value}"]
        content {
          driver = "d-${group.key}-${task.key}"
        }
      }
    }
  }
""")
    tasks = [(task.labels[0], task.attributes["driver"].value) for group in block.blocks for task in group.blocks]
    assert tasks == [("a1", "d-0-0"), ("a2", "d-0-1"), ("b1", "d-1-0"), ("b2", "d-1-1")]


@pytest.mark.parametrize(
    ("dynamic", "message"),
    [
        ('dynamic "x" {\n content {}\n}', "Missing for_each"),
        ('dynamic "x" {\n for_each = [1]\n}', "exactly one content block"),
        ('dynamic "x" {\n for_each = 5\n content {}\n}', "Invalid dynamic for_each value"),
        ('dynamic "x" {\n for_each = [1]\n bogus = 1\n content {}\n}', 'Unsupported argument "bogus"'),
        ("dynamic {\n for_each = [1]\n content {}\n}", "exactly one label"),
        ('dynamic "x" {\n for_each = [1]\n iterator = "i"\n content {}\n}', "must be a bare name"),
        ('dynamic "x" {\n for_each = [1]\n labels = "l"\n content {}\n}', "a list is required"),
    ],
)
def test_bad_dynamic_blocks(dynamic: str, message: str) -> None:
    messages = errors_of(f'job "j" {{\n{dynamic}\n}}\n')
    assert any(message in text for text in messages), messages


def test_duplicate_attribute_is_an_error_with_both_lines() -> None:
    messages = errors_of('job "j" {\n  region = "a"\n  region = "b"\n}\n')
    assert len(messages) == 1
    assert "s.nomad:3" in messages[0]
    assert "Attribute redefined" in messages[0]
    assert "line 2" in messages[0]


def test_labels_are_literal_strings() -> None:
    assert job('group "a\\"b" {}\ngroup plain {}').blocks_of("group")[0].labels == ('a"b',)
    assert job("group plain {}").blocks_of("group")[0].labels == ("plain",)
    messages = errors_of('job "j" {\n  group "${var.x}" {}\n}\n')
    assert any("template sequences are not allowed in labels" in text for text in messages)


def test_object_literal_attributes_are_marked_for_the_mapper() -> None:
    block = job(
        'config {\n  a = { k = 1 }\n  b = local.m\n  c = {for k in ["x"] : k => 1}\n}',
        prefix="locals {\n  m = { k = 1 }\n}",
    )
    config = block.blocks_of("config")[0].attributes
    assert isinstance(config["a"].value, ObjectLiteral)
    assert not isinstance(config["b"].value, ObjectLiteral)
    assert not isinstance(config["c"].value, ObjectLiteral)
    assert config["a"].value == config["b"].value == {"k": 1}


def test_attribute_values_are_not_shared_between_attributes() -> None:
    block = job("a = local.l\nb = local.l", prefix="locals {\n  l = [1]\n}")
    first, second = block.attributes["a"].value, block.attributes["b"].value
    assert first == second
    assert first is not second


def test_variable_and_locals_blocks_are_consumed_and_other_top_level_items_kept() -> None:
    root = evaluate_source(
        'variable "x" {\n  default = 1\n}\nlocals {\n  y = 2\n}\nfoo = 3\njob "a" {}\njob "b" {}\n', filename="s.nomad"
    )
    assert [block.type for block in root.blocks] == ["job", "job"]
    assert root.attributes["foo"].value == 3


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ('job "j" {\n  a = \n}\n', "Syntax error: unexpected end of line", 2),
        ('job "j" {\n  a = [1, 2\n}\n', "Syntax error", 3),
        ('job "j" {\n  group "g" {\n', "Syntax error", 2),
        ('job "j" {\n  a = 1 $ 2\n}\n', "Syntax error: unexpected '$", 2),
    ],
)
def test_syntax_errors_are_readable_with_a_position(text: str, message: str, line: int) -> None:
    [only] = errors_of(text)
    assert message in only
    assert f"s.nomad:{line}" in only
