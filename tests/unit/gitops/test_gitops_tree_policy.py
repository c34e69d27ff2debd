"""Tree checks without git: ls-tree parsing, limits, symlink resolution, and changed paths by blob."""

from __future__ import annotations

import pytest

from nomad_operator.controllers.gitops.git_errors import LimitExceeded, UnsafeSymlink
from nomad_operator.controllers.gitops.tree_policy import (
    MODE_SYMLINK,
    FetchLimits,
    FileInfo,
    TreeEntry,
    changed_paths,
    check_limits,
    parse_ls_tree,
    resolve_symlinks,
)

SHA_A = "a" * 40
SHA_B = "b" * 40


def blob(path: str, size: int, sha: str = SHA_A) -> TreeEntry:
    return TreeEntry(path=path, mode=0o100644, kind="blob", sha=sha, size=size)


def test_parse_ls_tree_handles_blobs_links_gitlinks_and_odd_names() -> None:
    raw = (
        f"100644 blob {SHA_A}     12\tjobs/web.nomad\0"
        f"120000 blob {SHA_B}      9\tjobs/link\0"
        f"160000 commit {SHA_A}       -\tvendor/sub\0"
        f"100755 blob {SHA_B}      3\tname with\ttab and spaces\0"
    ).encode()
    entries = parse_ls_tree(raw)
    assert [(e.path, e.mode, e.kind, e.size) for e in entries] == [
        ("jobs/web.nomad", 0o100644, "blob", 12),
        ("jobs/link", MODE_SYMLINK, "blob", 9),
        ("vendor/sub", 0o160000, "commit", 0),
        ("name with\ttab and spaces", 0o100755, "blob", 3),
    ]


def test_parse_ls_tree_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="unexpected git ls-tree record"):
        parse_ls_tree(b"not a record\0")


@pytest.mark.parametrize(
    ("limits", "entries", "limit_name"),
    [
        (FetchLimits(max_files=2), [blob("a", 1), blob("b", 1), blob("c", 1)], "max_files"),
        (FetchLimits(max_file_bytes=10), [blob("a", 1), blob("big", 11)], "max_file_bytes"),
        (FetchLimits(max_repository_bytes=10), [blob("a", 6), blob("b", 6)], "max_repository_bytes"),
    ],
)
def test_each_limit_names_itself(limits: FetchLimits, entries: list[TreeEntry], limit_name: str) -> None:
    with pytest.raises(LimitExceeded) as raised:
        check_limits(entries, limits)
    assert raised.value.limit == limit_name
    assert limit_name in str(raised.value)


def test_limits_count_git_dir_and_skip_gitlinks() -> None:
    gitlink = TreeEntry(path="sub", mode=0o160000, kind="commit", sha=SHA_A, size=0)
    check_limits([blob("a", 5), gitlink], FetchLimits(max_files=1, max_repository_bytes=10), git_dir_bytes=5)
    with pytest.raises(LimitExceeded, match="max_repository_bytes"):
        check_limits([blob("a", 5)], FetchLimits(max_repository_bytes=10), git_dir_bytes=6)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_files must be positive"):
        FetchLimits(max_files=0)


@pytest.mark.parametrize(
    ("links", "bad", "reason"),
    [
        ({"jobs/x": "../../etc/passwd"}, "jobs/x", "outside"),
        ({"x": "/etc/passwd"}, "x", "absolute"),
        ({"jobs/x": "../.git/config"}, "jobs/x", ".git"),
        ({"a": "b", "b": "a"}, "a", "loop"),
        # lexically inside, physically outside: x/y/up is the root, so "../.." from it leaves the tree
        ({"x/y/up": "../..", "jobs/evil": "../x/y/up/../../secret"}, "jobs/evil", "outside"),
        ({"d": "sub", "sub/e": "../../x"}, "sub/e", "outside"),
    ],
)
def test_escaping_links_are_refused(links: dict[str, str], bad: str, reason: str) -> None:
    with pytest.raises(UnsafeSymlink, match=reason) as raised:
        resolve_symlinks(links)
    assert raised.value.path == bad


def test_links_inside_the_tree_resolve_physically() -> None:
    links = {"jobs/a.nomad": "../shared/a.nomad", "deep/x/y/top": "../../..", "via": "deep/x/y/top/shared/b"}
    assert resolve_symlinks(links) == {
        "jobs/a.nomad": "shared/a.nomad",
        "deep/x/y/top": "",
        "via": "shared/b",
    }


def files(**blobs: str) -> dict[str, FileInfo]:
    return {path.replace("__", "/"): FileInfo(blob_sha=sha, size=1) for path, sha in blobs.items()}


def test_changed_paths_by_blob() -> None:
    old = files(jobs__a=SHA_A, jobs__b=SHA_A, jobs__gone=SHA_A)
    new = files(jobs__a=SHA_B, jobs__b=SHA_A, jobs__new=SHA_A)
    assert changed_paths(old, new) == {"jobs/a", "jobs/gone", "jobs/new"}
    assert changed_paths(None, new) == set(new)
    assert changed_paths(new, new) == frozenset()


def test_a_link_changes_with_its_target() -> None:
    link = FileInfo(blob_sha=SHA_A, size=6, mode=MODE_SYMLINK, link_target="shared/x")
    old = {"jobs/l": link, "shared/x": FileInfo(blob_sha=SHA_A, size=1)}
    new = {"jobs/l": link, "shared/x": FileInfo(blob_sha=SHA_B, size=1)}
    assert changed_paths(old, new) == {"jobs/l", "shared/x"}


def test_mode_change_is_a_change() -> None:
    old = {"run.sh": FileInfo(blob_sha=SHA_A, size=1, mode=0o100644)}
    new = {"run.sh": FileInfo(blob_sha=SHA_A, size=1, mode=0o100755)}
    assert changed_paths(old, new) == {"run.sh"}
