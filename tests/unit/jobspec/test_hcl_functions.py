"""Nomad's HCL2 function library: names, results as cty gives them, and the file functions' confinement."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.evaluate import evaluate_source
from nomad_operator.jobspec.functions import LAZY_FUNCTION_NAMES, NOMAD_FUNCTION_NAMES, nomad_functions


def value(expression: str, **options: object) -> object:
    root = evaluate_source(f'job "j" {{\n  v = {expression}\n}}\n', filename="f.nomad", **options)  # type: ignore[arg-type]
    return root.blocks_of("job")[0].attributes["v"].value


def error(expression: str, **options: object) -> str:
    with pytest.raises(JobspecErrors) as caught:
        value(expression, **options)
    return str(caught.value)


def test_function_table_is_exactly_nomads() -> None:
    table = nomad_functions(base_dir=None, root_dir=None, allow_fs=True)
    assert set(table) | LAZY_FUNCTION_NAMES == NOMAD_FUNCTION_NAMES


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('upper("abc")', "ABC"),
        ('title("hello wor-ld")', "Hello Wor-Ld"),
        ('format("%s-%03d-%.2f-%v-%q", "a", 7, 1.5, true, "x")', 'a-007-1.50-true-"x"'),
        ('formatlist("%s=%d", ["a", "b"], [1, 2])', ["a=1", "b=2"]),
        ('join(",", ["a", "b"], ["c"])', "a,b,c"),
        ('split(",", "a,b,,c")', ["a", "b", "", "c"]),
        ('replace("a.b.c", ".", "-")', "a-b-c"),
        ('regex_replace("a1b22", "([0-9]+)", "<$1>")', "a<1>b<22>"),
        ('substr("hello", 1, 3)', "ell"),
        ('substr("hello", -3, -1)', "llo"),
        ('chomp("x\\n\\n")', "x"),
        ('indent(2, "a\\nb")', "a\n  b"),
        ('trimspace("  x ")', "x"),
        ('trim("--x--", "-")', "x"),
        ('reverse("abc")', "cba"),
        ("length([1, 2, 3])", 3),
        ("length({a = 1})", 1),
        ('lookup({a = 1}, "b", 5)', 5),
        ("merge({a = 1, b = 2}, {b = 3})", {"a": 1, "b": 3}),
        ("concat([1], [2, 3])", [1, 2, 3]),
        ("flatten([[1, [2]], 3])", [1, 2, 3]),
        ("distinct([1, 2, 1])", [1, 2]),
        ("element([1, 2, 3], 4)", 2),
        ("chunklist([1, 2, 3], 2)", [[1, 2], [3]]),
        ("range(3)", [0, 1, 2]),
        ("range(1, 7, 2)", [1, 3, 5]),
        ('sort(["b", "a", "c"])', ["a", "b", "c"]),
        ("keys({b = 1, a = 2})", ["a", "b"]),
        ("values({b = 1, a = 2})", [2, 1]),
        ('zipmap(["a", "b"], [1, 2])', {"a": 1, "b": 2}),
        ('setunion(["b"], ["a", "b"])', ["a", "b"]),
        ('setintersection(["a", "b"], ["b", "c"])', ["b"]),
        ('setproduct([1, 2], ["x"])', [[1, "x"], [2, "x"]]),
        ("slice([1, 2, 3, 4], 1, 3)", [2, 3]),
        ('coalesce(null, "", "x")', ""),
        ("coalescelist([], [1])", [1]),
        ('compact(["a", "", "b"])', ["a", "b"]),
        ('contains(["a"], "a")', True),
        ('index(["a", "b"], "b")', 1),
        ("max(1, 5, 3)", 5),
        ("min(4, 2)", 2),
        ("abs(-3)", 3),
        ("ceil(1.2)", 2),
        ("floor(1.8)", 1),
        ("pow(2, 10)", 1024),
        ("signum(-5)", -1),
        ("log(8, 2)", 3),
        ('parseint("ff", 16)', 255),
        ('jsonencode({b = [1, "<x>"], a = null})', '{"a":null,"b":[1,"\\u003cx\\u003e"]}'),
        ('jsondecode("{\\"a\\": [1, 2.5, true]}")', {"a": [1, 2.5, True]}),
        ('yamldecode("a: 1\\nb: [x, y]\\n")', {"a": 1, "b": ["x", "y"]}),
        ('yamlencode({a = "b", c = [1, true]})', '"a": "b"\n"c":\n- 1\n- true\n'),
        ('csvdecode("a,b\\n1,2\\n")', [{"a": "1", "b": "2"}]),
        ('base64encode("hi")', "aGk="),
        ('base64decode("aGk=")', "hi"),
        ('urlencode("a b/c")', "a+b%2Fc"),
        ('sha256("x")', hashlib.sha256(b"x").hexdigest()),
        ('md5("x")', hashlib.md5(b"x").hexdigest()),
        ('uuidv5("dns", "example.com")', "cfbff0d1-9375-5685-968c-48ce8b15ae17"),
        ('timeadd("2024-01-01T00:00:00Z", "1h30m")', "2024-01-01T01:30:00Z"),
        ('formatdate("DD MMM YYYY hh:mm ZZZ", "2024-03-05T07:08:09Z")', "05 Mar 2024 07:08 UTC"),
        ('cidrhost("10.0.0.0/24", 5)', "10.0.0.5"),
        ('cidrnetmask("10.0.0.0/12")', "255.240.0.0"),
        ('cidrsubnet("10.0.0.0/16", 8, 2)', "10.0.2.0/24"),
        ('cidrsubnets("10.0.0.0/16", 8, 8, 4)', ["10.0.0.0/24", "10.0.1.0/24", "10.0.16.0/20"]),
        ('convert("5", number)', 5),
    ],
)
def test_function_results(expression: str, expected: object) -> None:
    assert value(expression) == expected


def test_uuidv4_and_bcrypt_have_the_right_shape() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", str(value("uuidv4()")))
    assert str(value('bcrypt("secret", 4)')).startswith("$2a$04$")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("element([], 0)", "empty list"),
        ('lookup({}, "k")', 'failed to find key "k"'),
        ('base64decode("!!")', "not valid base64"),
        ('jsondecode("{")', "invalid JSON"),
        ('parseint("z", 10)', "cannot parse"),
        ('timeadd("yesterday", "1h")', "RFC 3339"),
        ('timeadd("2024-01-01T00:00:00Z", "1d")', "not a duration"),
        ('cidrhost("10.0.0.0/30", 9)', "does not fit"),
        ('format("%d", 1.5)', "whole number"),
        ('zipmap(["a"], [])', "1 keys but 0 values"),
        ("upper(null)", "must not be null"),
        ('regex_replace("a", "(", "")', "invalid regular expression"),
    ],
)
def test_function_errors(expression: str, message: str) -> None:
    assert message in error(expression)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    (tmp_path / "jobs" / "files").mkdir(parents=True)
    (tmp_path / "jobs" / "files" / "a.conf").write_text("port = 1\n", encoding="utf-8")
    (tmp_path / "jobs" / "files" / "b.conf").write_text("port = 2\n", encoding="utf-8")
    (tmp_path / "jobs" / "files" / "bin.dat").write_bytes(b"\xff\x00")
    (tmp_path / "secret.txt").write_text("outside\n", encoding="utf-8")
    (tmp_path / "jobs" / "link").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def test_file_functions_read_relative_to_the_job_folder(repository: Path) -> None:
    options = {"base_dir": repository / "jobs", "root_dir": repository / "jobs"}
    assert value('file("files/a.conf")', **options) == "port = 1\n"
    assert value('filebase64("files/bin.dat")', **options) == base64.b64encode(b"\xff\x00").decode()
    assert value('fileexists("files/a.conf")', **options) is True
    assert value('fileexists("files/none")', **options) is False
    assert value('fileset("files", "*.conf")', **options) == ["a.conf", "b.conf"]
    assert value('fileset(".", "**/*.conf")', **options) == ["files/a.conf", "files/b.conf"]
    assert value('basename("a/b/c.txt")', **options) == "c.txt"
    assert value('dirname("a/b/c.txt")', **options) == "a/b"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('file("../secret.txt")', "outside the repository"),
        ('file("link")', "outside the repository"),
        ('file("/etc/hostname")', "outside the repository"),
        ('file("files/none")', "no file exists"),
        ('file("files/bin.dat")', "not valid UTF-8"),
        ('file("files")', "is a directory"),
    ],
)
def test_file_functions_refuse_to_leave_the_repository(repository: Path, expression: str, message: str) -> None:
    assert message in error(expression, base_dir=repository / "jobs", root_dir=repository / "jobs")


def test_file_functions_are_disabled_without_allow_fs(repository: Path) -> None:
    message = error('file("files/a.conf")', base_dir=repository / "jobs", allow_fs=False)
    assert "filesystem functions are disabled" in message
