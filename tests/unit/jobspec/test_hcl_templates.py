"""String templates and heredocs: escapes, directives, strip markers, `<<EOF` and `<<-EOF` byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.evaluate import evaluate_source


def value(expression: str, *, variables: dict[str, str] | None = None) -> object:
    text = f'variable "x" {{\n  default = "X"\n}}\njob "j" {{\n  v = {expression}\n}}\n'
    root = evaluate_source(text, filename="t.nomad", variables=variables or {})
    return root.blocks_of("job")[0].attributes["v"].value


def heredoc(body: str, *, marker: str = "<<EOF", indent: str = "") -> object:
    closing = indent + marker.lstrip("<-")
    return value(f"{marker}\n{body}{closing}")


def test_quoted_string_escapes() -> None:
    assert value(r'"a\nb\t\"q\" \\ \u00e9 \U0001F600"') == 'a\nb\t"q" \\ é 😀'


def test_escaped_interpolation_and_directive_markers() -> None:
    assert value('"$${NOMAD_TASK_DIR}/x %%{ if }"') == "${NOMAD_TASK_DIR}/x %{ if }"
    assert value('"$${env[\\"X\\"]}"') == '${env["X"]}'


def test_interpolation_and_passthrough_of_a_lone_interpolation() -> None:
    assert value('"a-${var.x}-${1 + 1}"') == "a-X-2"
    assert value('"${[1, 2]}"') == [1, 2]
    assert value('"${true}"') is True


def test_if_and_for_directives_with_strip_markers() -> None:
    assert value('"%{ if var.x == "X" }yes%{ else }no%{ endif }"') == "yes"
    assert value('"%{ for i, s in ["a", "b"] }${i}${s},%{ endfor }"') == "0a,1b,"
    assert value('"a ${~ "b" ~} c"') == "abc"
    assert value('"x %{~ if true ~} y %{~ endif ~} z"') == "xyz"


def test_heredoc_keeps_its_trailing_newline_and_quotes() -> None:
    assert heredoc('{{ key "app/config" }}\nline "two"\n') == '{{ key "app/config" }}\nline "two"\n'


def test_heredoc_keeps_backslashes_literally() -> None:
    assert heredoc('C:\\path\\n and \\"\n') == 'C:\\path\\n and \\"\n'


def test_indented_heredoc_removes_the_least_indentation_and_keeps_quotes() -> None:
    body = '    server {\n      name "a"\n\n    }\n'
    assert heredoc(body, marker="<<-EOT", indent="    ") == 'server {\n  name "a"\n\n}\n'


def test_indented_heredoc_keeps_blank_lines_whitespace() -> None:
    assert heredoc("  a\n     \n  b\n", marker="<<-EOT") == "a\n     \nb\n"


def test_heredoc_interpolates_and_strips_per_line() -> None:
    body = '%{ for s in ["a", "b"] ~}\nitem ${s}\n%{ endfor ~}\n$${NOMAD_ALLOC_DIR} ${attr.unique.hostname}\n'
    assert heredoc(body) == "item a\nitem b\n${NOMAD_ALLOC_DIR} ${attr.unique.hostname}\n"


def test_empty_heredoc() -> None:
    assert heredoc("") == ""


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('"a\\q"', "Invalid escape sequence"),
        ('"${[1]} x"', "cannot include a tuple"),
        ('"${null} x"', "result is null"),
        ('"%{ if true }a"', "no endif"),
        ('"%{ endif }"', "Unexpected endif"),
        ("<<EOF\n%{ bogus }\nEOF", "Invalid template directive"),
        ("<<EOF\n${ 1 +\nEOF", "Unclosed template sequence"),
    ],
)
def test_bad_templates_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(JobspecErrors) as caught:
        value(expression)
    assert message in str(caught.value)


def test_multi_line_quoted_string_is_an_error() -> None:
    with pytest.raises(JobspecErrors, match="Invalid multi-line string"):
        evaluate_source('job "j" {\n  v = "a\nb"\n}\n', filename="t.nomad")


# Text that carries no template sequence and no heredoc-closing line.
_PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\r\u2028\u2029\x85"),
    max_size=60,
).filter(lambda s: "${" not in s and "%{" not in s)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=150, deadline=None)
@given(_PLAIN)
def test_plain_text_round_trips_through_a_quoted_string(text: str) -> None:
    assert value(_quote(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.lists(_PLAIN.filter(lambda s: "\n" not in s and s.strip() != "EOF"), max_size=5))
def test_plain_lines_round_trip_through_a_heredoc(lines: list[str]) -> None:
    body = "".join(line + "\n" for line in lines)
    assert heredoc(body) == body


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_PLAIN.filter(lambda s: "\n" not in s and s.strip() and s.strip() != "EOT"), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=6),
)
def test_indented_heredoc_undoes_uniform_indentation(lines: list[str], width: int) -> None:
    stripped = [line.lstrip() for line in lines]
    body = "".join(" " * width + line + "\n" for line in stripped)
    assert heredoc(body, marker="<<-EOT") == "".join(line + "\n" for line in stripped)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True))
def test_escaped_interpolation_always_yields_the_plain_form(name: str) -> None:
    assert value(_quote("$${" + name + "}")) == "${" + name + "}"
    assert heredoc("$${" + name + "}\n") == "${" + name + "}\n"
