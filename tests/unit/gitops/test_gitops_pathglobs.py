"""Path globs: `**` spans zero or more directories, `*` stays in a segment, bad patterns are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.controllers.gitops.pathglobs import DEFAULT_JOB_PATHS, InvalidGlob, PathGlobs


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("jobs/web.nomad", True),
        ("jobs/a/b/web.nomad", True),
        ("jobs/web.nomad.hcl", True),
        ("jobs/x/web.nomad.hcl", True),
        ("jobs.nomad", False),
        ("other/jobs/web.nomad", False),
        ("jobs/web.nomad.bak", False),
        ("jobs/web.hcl", False),
        ("jobsx/web.nomad", False),
    ],
)
def test_default_job_globs(path: str, expected: bool) -> None:
    assert DEFAULT_JOB_PATHS.matches(path) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("jobs/*.nomad", "jobs/a.nomad", True),
        ("jobs/*.nomad", "jobs/x/a.nomad", False),
        ("jobs/?.nomad", "jobs/a.nomad", True),
        ("jobs/?.nomad", "jobs/ab.nomad", False),
        ("jobs/[ab].nomad", "jobs/b.nomad", True),
        ("jobs/[!ab].nomad", "jobs/b.nomad", False),
        ("jobs/[!ab].nomad", "jobs/c.nomad", True),
        ("jobs/**", "jobs/a/b/c", True),
        ("jobs/**", "jobs", False),
        ("**/*.nomad", "a.nomad", True),
        ("**/*.nomad", "deep/er/a.nomad", True),
        ("jobs/a**b.nomad", "jobs/axxb.nomad", True),
        ("jobs/a**b.nomad", "jobs/a/b.nomad", False),
        ("jobs/a+b(1).nomad", "jobs/a+b(1).nomad", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert PathGlobs.of(pattern).matches(path) is expected


@pytest.mark.parametrize("pattern", ["", "/jobs/*.nomad", "jobs/../x", "jobs//a", "./jobs", " jobs/*", "jobs/[ab"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidGlob):
        PathGlobs.of(pattern)


def test_no_patterns_is_refused() -> None:
    with pytest.raises(InvalidGlob, match="at least one"):
        PathGlobs(())


def test_select_is_sorted_and_filtered() -> None:
    paths = ["jobs/z.nomad", "README.md", "jobs/a/b.nomad.hcl", "jobs/a.nomad"]
    assert DEFAULT_JOB_PATHS.select(paths) == ["jobs/a.nomad", "jobs/a/b.nomad.hcl", "jobs/z.nomad"]


segment = st.text(alphabet="abcxyz.-_", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@given(dirs=st.lists(segment, max_size=4), name=segment)
def test_double_star_matches_any_depth(dirs: list[str], name: str) -> None:
    path = "/".join(["jobs", *dirs, name + ".nomad"])
    assert PathGlobs.of("jobs/**/*.nomad").matches(path)
    assert not PathGlobs.of("jobs/**/*.nomad").matches("x" + path)
