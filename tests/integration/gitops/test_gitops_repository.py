"""GitRepository against real repositories over file://: branches, tags, commits, changes, rewrites and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from nomad_operator.controllers.gitops.git_errors import (
    CommitNotFound,
    FileNotInRevision,
    RefNotFound,
    SourceConfigError,
)
from nomad_operator.controllers.gitops.repository import GitRepository


def make_repo(url: str, ref: str, directory: Path) -> GitRepository:
    return GitRepository(url=url, ref=ref, directory=directory)


async def test_branch_fetch_checks_out_the_tip_and_reads_files(origin, tmp_path: Path) -> None:
    tip = origin.commit_and_push({"jobs/api/api.nomad.hcl": 'job "api" {}\n'}, "add api")
    repo = make_repo(origin.url, "main", tmp_path / "wc")

    revision = await repo.poll()

    assert revision is not None
    assert revision.sha == tip
    assert set(revision.files) == {"README.md", "jobs/web.nomad", "jobs/api/api.nomad.hcl"}
    assert revision.changed == frozenset(revision.files)  # first fetch: everything is new
    assert repo.paths() == ["jobs/api/api.nomad.hcl", "jobs/web.nomad"]
    assert repo.read_file("jobs/web.nomad") == b'job "web" {}\n'
    assert revision.files["README.md"].size == len("hello\n")


async def test_fetch_is_shallow(origin, tmp_path: Path, git_cli) -> None:
    for n in range(3):
        origin.commit_and_push({f"jobs/j{n}.nomad": f'job "j{n}" {{}}\n'}, f"commit {n}")
    repo = make_repo(origin.url, "main", tmp_path / "wc")

    await repo.fetch()

    assert git_cli("rev-list", "--count", "HEAD", cwd=tmp_path / "wc") == "1"


@pytest.mark.parametrize("annotated", [True, False])
@pytest.mark.parametrize("spelling", ["v1", "refs/tags/v1"])
async def test_tag_fetch_resolves_to_the_tagged_commit(origin, tmp_path: Path, annotated: bool, spelling: str) -> None:
    tagged = origin.commit_and_push({"jobs/web.nomad": 'job "web" { version = 1 }\n'}, "v1")
    origin.tag("v1", annotated=annotated)
    origin.commit_and_push({"jobs/web.nomad": 'job "web" { version = 2 }\n'}, "after v1")
    repo = make_repo(origin.url, spelling, tmp_path / "wc")

    assert await repo.remote_revision() == tagged
    revision = await repo.fetch()

    assert revision.sha == tagged
    assert repo.read_file("jobs/web.nomad") == b'job "web" { version = 1 }\n'


async def test_commit_ref_needs_no_ls_remote_and_fetches_that_commit(origin, tmp_path: Path) -> None:
    pinned = origin.commit_and_push({"jobs/web.nomad": 'job "web" { pinned = true }\n'}, "pinned")
    origin.commit_and_push({"jobs/web.nomad": 'job "web" { later = true }\n'}, "later")
    repo = make_repo(origin.url, pinned, tmp_path / "wc")

    assert await repo.remote_revision() == pinned
    assert repo.stats.remote_checks == 0
    revision = await repo.poll()

    assert revision is not None
    assert revision.sha == pinned
    assert repo.read_file("jobs/web.nomad") == b'job "web" { pinned = true }\n'
    assert await repo.poll() is None  # a commit never moves
    assert repo.stats.network_fetches == 1


async def test_commit_below_the_shallow_boundary_is_found(origin, tmp_path: Path) -> None:
    old = origin.commit_and_push({"jobs/old.nomad": 'job "old" {}\n'}, "old")
    origin.commit_and_push({"jobs/new.nomad": 'job "new" {}\n'}, "new")
    branch = make_repo(origin.url, "main", tmp_path / "wc")
    await branch.fetch()  # a shallow working copy first
    pinned = make_repo(origin.url, old, tmp_path / "wc")

    revision = await pinned.fetch()

    assert revision.sha == old
    assert "jobs/new.nomad" not in revision.files


async def test_commit_not_on_the_remote_is_a_clear_error(origin, tmp_path: Path) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    repo = make_repo(origin.url, missing, tmp_path / "wc")

    with pytest.raises(CommitNotFound, match=f"commit {missing} is not on the remote"):
        await repo.fetch()
    assert repo.current is None


async def test_missing_branch_is_ref_not_found(origin, tmp_path: Path) -> None:
    repo = make_repo(origin.url, "nope", tmp_path / "wc")
    with pytest.raises(RefNotFound, match="'nope' not found"):
        await repo.poll()


async def test_name_that_is_both_branch_and_tag_is_refused(origin, tmp_path: Path, git_cli) -> None:
    git_cli("branch", "v2", cwd=origin.work)
    origin.push("v2")
    origin.tag("v2")
    repo = make_repo(origin.url, "v2", tmp_path / "wc")
    with pytest.raises(SourceConfigError, match="both a branch and a tag"):
        await repo.remote_revision()
    assert (await make_repo(origin.url, "refs/heads/v2", tmp_path / "wc2").fetch()).sha


async def test_changed_files_are_detected_by_blob(origin, tmp_path: Path) -> None:
    origin.commit_and_push({"jobs/a.nomad": "a1\n", "jobs/b.nomad": "b1\n", "jobs/c.nomad": "c1\n"}, "three")
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    first = await repo.poll()
    assert first is not None

    origin.write("jobs/a.nomad", "a2\n")
    origin.write("jobs/d.nomad", "d1\n")
    origin.remove("jobs/c.nomad")
    origin.write("jobs/b.nomad", "b1\n")  # rewritten with the same content: not a change
    origin.commit("edit")
    origin.push()
    second = await repo.poll()

    assert second is not None
    assert second.previous_sha == first.sha
    assert second.changed == {"jobs/a.nomad", "jobs/c.nomad", "jobs/d.nomad"}
    assert not (tmp_path / "wc" / "jobs" / "c.nomad").exists()


async def test_no_op_poll_does_not_fetch(origin, tmp_path: Path) -> None:
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    await repo.poll()
    fetches = repo.stats.network_fetches

    assert await repo.poll() is None
    assert await repo.poll() is None

    assert repo.stats.network_fetches == fetches
    assert repo.stats.remote_checks == 3


async def test_force_push_is_followed(origin, tmp_path: Path) -> None:
    origin.commit_and_push({"jobs/web.nomad": "v1\n"}, "v1")
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    before = await repo.poll()
    assert before is not None

    origin.write("jobs/web.nomad", "amended\n")
    amended = origin.commit("v1 amended", amend=True)
    origin.push(force=True)
    after = await repo.poll()

    assert after is not None
    assert after.sha == amended != before.sha
    assert after.changed == {"jobs/web.nomad"}
    assert repo.read_file("jobs/web.nomad") == b"amended\n"


async def test_rewritten_history_replaces_the_working_copy(origin, tmp_path: Path, git_cli) -> None:
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    await repo.poll()
    (tmp_path / "wc" / "stray.txt").write_text("left by hand")
    (tmp_path / "wc" / "jobs" / "web.nomad").write_text("edited by hand")

    git_cli("checkout", "-q", "--orphan", "fresh", cwd=origin.work)
    git_cli("rm", "-q", "-r", "--cached", ".", cwd=origin.work)
    for path in ("jobs/web.nomad", "README.md"):
        (origin.work / path).unlink()
    origin.write("jobs/other.nomad", "other\n")
    rewritten = origin.commit("new root")
    git_cli("push", "-q", "--force", "origin", "fresh:main", cwd=origin.work)
    revision = await repo.poll()

    assert revision is not None
    assert revision.sha == rewritten
    assert set(revision.files) == {"jobs/other.nomad"}
    assert sorted(p.name for p in (tmp_path / "wc").rglob("*") if ".git" not in p.parts and p.is_file()) == [
        "other.nomad"
    ]


async def test_unreachable_remote_keeps_the_last_good_copy(origin, tmp_path: Path) -> None:
    moved = tmp_path / "moved.git"
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    good = await repo.fetch()
    origin.bare.rename(moved)
    try:
        from nomad_operator.controllers.gitops.git_errors import FetchError

        with pytest.raises(FetchError, match="cannot list refs"):
            await repo.poll()
        with pytest.raises(FetchError):
            await repo.fetch()
    finally:
        moved.rename(origin.bare)
    assert repo.current is good
    assert repo.read_file("jobs/web.nomad") == b'job "web" {}\n'


async def test_read_file_refuses_paths_outside_the_revision(origin, tmp_path: Path) -> None:
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    with pytest.raises(FileNotInRevision, match="nothing has been fetched"):
        repo.read_file("jobs/web.nomad")
    await repo.fetch()
    for bad in ("../outside", "/etc/passwd", "jobs/../README.md", "", ".git/config", "jobs/missing.nomad"):
        with pytest.raises(FileNotInRevision):
            repo.read_file(bad)
    assert await repo.read_files(["README.md"]) == {"README.md": b"hello\n"}


async def test_existing_non_git_directory_is_not_clobbered(origin, tmp_path: Path) -> None:
    directory = tmp_path / "precious"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine")
    repo = make_repo(origin.url, "main", directory)

    with pytest.raises(SourceConfigError, match="not a git working copy"):
        await repo.fetch()
    assert (directory / "notes.txt").read_text() == "mine"


async def test_working_copy_survives_a_restart(origin, tmp_path: Path) -> None:
    first = make_repo(origin.url, "main", tmp_path / "wc")
    revision = await first.poll()
    assert revision is not None

    restarted = make_repo(origin.url, "main", tmp_path / "wc")
    again = await restarted.poll()

    assert again is not None
    assert again.sha == revision.sha
    assert restarted.stats.network_fetches == 0  # the commit was already on disk
    assert again.changed == frozenset(again.files)  # a new process has parsed nothing yet


async def test_no_git_children_linger(origin, tmp_path: Path, lingering_git_children) -> None:
    origin.symlink("jobs/alias.nomad", "web.nomad")
    origin.commit("with a symlink, read through gitpython's object database")
    origin.push()
    repo = make_repo(origin.url, "main", tmp_path / "wc")
    await repo.poll()
    await repo.poll()
    await repo.fetch()
    repo.read_file("jobs/alias.nomad")

    assert lingering_git_children() == []
