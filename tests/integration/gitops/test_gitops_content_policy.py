"""Limits and symlinks on real fetched trees: each breach is a clear error and the last good copy stays in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from nomad_operator.controllers.gitops.git_errors import LimitExceeded, UnsafeSymlink
from nomad_operator.controllers.gitops.repository import GitRepository
from nomad_operator.controllers.gitops.tree_policy import FetchLimits


async def good_then_bad(origin, tmp_path: Path, limits: FetchLimits, bad: dict[str, str]) -> GitRepository:
    repo = GitRepository(url=origin.url, ref="main", directory=tmp_path / "wc", limits=limits)
    await repo.fetch()
    origin.commit_and_push(bad, "bad")
    return repo


async def assert_last_good_kept(repo: GitRepository, good_sha: str) -> None:
    assert repo.current is not None
    assert repo.current.sha == good_sha
    assert repo.read_file("jobs/web.nomad") == b'job "web" {}\n'
    assert not (repo.directory / "jobs" / "big.nomad").exists()


async def test_file_count_limit(origin, tmp_path: Path) -> None:
    repo = await good_then_bad(origin, tmp_path, FetchLimits(max_files=3), {f"jobs/n{i}.nomad": "x" for i in range(3)})
    good = repo.current
    assert good is not None

    with pytest.raises(LimitExceeded, match=r"max_files exceeded: 5 > 3") as raised:
        await repo.poll()

    assert raised.value.limit == "max_files"
    await assert_last_good_kept(repo, good.sha)


async def test_file_size_limit_names_the_file(origin, tmp_path: Path) -> None:
    repo = await good_then_bad(origin, tmp_path, FetchLimits(max_file_bytes=100), {"jobs/big.nomad": "x" * 101})
    good = repo.current
    assert good is not None

    with pytest.raises(LimitExceeded, match=r"max_file_bytes exceeded \(jobs/big.nomad\): 101 > 100"):
        await repo.poll()

    await assert_last_good_kept(repo, good.sha)


async def test_repository_size_limit(origin, tmp_path: Path) -> None:
    # Incompressible content, so .git grows with the tree and the check cannot pass by compression alone.
    import os

    limits = FetchLimits(max_repository_bytes=200_000)
    repo = await good_then_bad(origin, tmp_path, limits, {"jobs/big.nomad": os.urandom(150_000).hex()})
    good = repo.current
    assert good is not None

    with pytest.raises(LimitExceeded, match="max_repository_bytes exceeded") as raised:
        await repo.poll()

    assert raised.value.actual > 200_000
    await assert_last_good_kept(repo, good.sha)


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("jobs/escape.nomad", "../../../etc/passwd"),
        ("jobs/absolute.nomad", "/etc/passwd"),
        ("jobs/gitdir.nomad", "../.git/config"),
    ],
)
async def test_symlink_out_of_the_tree_is_refused(origin, tmp_path: Path, link: str, target: str) -> None:
    repo = GitRepository(url=origin.url, ref="main", directory=tmp_path / "wc")
    good = await repo.fetch()
    origin.symlink(link, target)
    origin.commit("evil link")
    origin.push()

    with pytest.raises(UnsafeSymlink, match=f"symlink '{link}'"):
        await repo.poll()

    assert repo.current is good
    assert not (repo.directory / link).is_symlink()


async def test_chained_links_that_escape_physically_are_refused(origin, tmp_path: Path) -> None:
    # Lexically "x/y/up/../.." stays inside; on disk x/y/up is the root, so two more ".." leave the repository.
    repo = GitRepository(url=origin.url, ref="main", directory=tmp_path / "wc")
    await repo.fetch()
    origin.write("x/y/keep", "k\n")
    origin.symlink("x/y/up", "../..")
    origin.symlink("jobs/sneaky.nomad", "../x/y/up/../../secret")
    origin.commit("chain")
    origin.push()

    with pytest.raises(UnsafeSymlink, match="outside the repository"):
        await repo.poll()


async def test_symlinks_inside_the_tree_are_followed_and_tracked(origin, tmp_path: Path) -> None:
    origin.write("shared/base.nomad", "base v1\n")
    origin.symlink("jobs/linked.nomad", "../shared/base.nomad")
    origin.commit("in-tree link")
    origin.push()
    repo = GitRepository(url=origin.url, ref="main", directory=tmp_path / "wc")
    first = await repo.poll()
    assert first is not None
    assert first.files["jobs/linked.nomad"].link_target == "shared/base.nomad"
    assert repo.read_file("jobs/linked.nomad") == b"base v1\n"

    origin.commit_and_push({"shared/base.nomad": "base v2\n"}, "target changes, link does not")
    second = await repo.poll()

    assert second is not None
    assert second.changed == {"shared/base.nomad", "jobs/linked.nomad"}
    assert repo.read_file("jobs/linked.nomad") == b"base v2\n"
