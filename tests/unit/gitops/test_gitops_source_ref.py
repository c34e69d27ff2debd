"""Source refs: classification, ls-remote parsing, ambiguity and clear errors."""

from __future__ import annotations

import pytest

from nomad_operator.controllers.gitops.git_errors import RefNotFound, SourceConfigError
from nomad_operator.controllers.gitops.source_ref import SourceRef, parse_ls_remote, pick_remote_commit

SHA = "0123456789abcdef0123456789abcdef01234567"
TAG_OBJECT = "f" * 40
COMMIT = "c" * 40


def test_candidates() -> None:
    assert SourceRef("main").candidates() == ("refs/heads/main", "refs/tags/main", "refs/tags/main^{}")
    assert SourceRef("refs/heads/main").candidates() == ("refs/heads/main",)
    assert SourceRef("refs/tags/v1").candidates() == ("refs/tags/v1", "refs/tags/v1^{}")
    assert SourceRef(SHA).candidates() == ()
    assert SourceRef(SHA).commit == SHA
    assert SourceRef("main").commit is None


@pytest.mark.parametrize(
    "bad", ["", "-upload-pack=evil", "a..b", "has space", "x~1", "x^", "a:b", "end/", "x.lock", "refs/remotes/origin/x"]
)
def test_bad_refs_are_refused(bad: str) -> None:
    with pytest.raises(SourceConfigError):
        SourceRef(bad)


def test_parse_ls_remote() -> None:
    text = f"{SHA}\trefs/heads/main\n{TAG_OBJECT}\trefs/tags/v1\n{COMMIT}\trefs/tags/v1^{{}}\n\n"
    assert parse_ls_remote(text) == {"refs/heads/main": SHA, "refs/tags/v1": TAG_OBJECT, "refs/tags/v1^{}": COMMIT}


def test_annotated_tag_resolves_to_its_commit() -> None:
    listing = {"refs/tags/v1": TAG_OBJECT, "refs/tags/v1^{}": COMMIT}
    assert pick_remote_commit(SourceRef("v1"), listing, url="u") == ("refs/tags/v1", COMMIT)
    assert pick_remote_commit(SourceRef("refs/tags/v1"), {"refs/tags/v1": SHA}, url="u") == ("refs/tags/v1", SHA)


def test_branch_and_tag_of_one_name_is_ambiguous() -> None:
    listing = {"refs/heads/v1": SHA, "refs/tags/v1": COMMIT}
    with pytest.raises(SourceConfigError, match="both a branch and a tag"):
        pick_remote_commit(SourceRef("v1"), listing, url="u")
    assert pick_remote_commit(SourceRef("refs/heads/v1"), listing, url="u") == ("refs/heads/v1", SHA)


def test_missing_ref_hints_at_short_shas() -> None:
    with pytest.raises(RefNotFound, match="full 40-character SHA"):
        pick_remote_commit(SourceRef("abc1234"), {}, url="u")
    with pytest.raises(RefNotFound, match="'main' not found on u") as raised:
        pick_remote_commit(SourceRef("main"), {"refs/heads/other": SHA}, url="u")
    assert "SHA" not in str(raised.value)
