"""GitRepository over `git daemon` on loopback: round trips counted by the server, and a remote that goes away."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nomad_operator.controllers.gitops.git_errors import FetchError
from nomad_operator.controllers.gitops.repository import GitRepository

LOG_SETTLE_SECONDS = 5.0


def wait_for_connections(daemon, at_least: int) -> int:
    """The daemon logs a request slightly after serving it: poll the log until it shows `at_least` of them."""
    deadline = time.monotonic() + LOG_SETTLE_SECONDS
    while (count := daemon.connections()) < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


async def test_fetch_over_git_daemon(git_daemon, origin_factory, tmp_path: Path) -> None:
    origin = origin_factory("fetch", git_daemon.base)
    origin.commit_and_push({"jobs/web.nomad": "web\n"})
    repo = GitRepository(url=git_daemon.url(origin), ref="main", directory=tmp_path / "wc")

    revision = await repo.poll()

    assert revision is not None
    assert repo.read_file("jobs/web.nomad") == b"web\n"


async def test_no_op_cycle_costs_one_round_trip(git_daemon, origin_factory, tmp_path: Path) -> None:
    origin = origin_factory("noop", git_daemon.base)
    origin.commit_and_push({"jobs/web.nomad": "web\n"})
    repo = GitRepository(url=git_daemon.url(origin), ref="main", directory=tmp_path / "wc")
    await repo.poll()  # ls-remote + fetch
    before = wait_for_connections(git_daemon, 2)

    for _ in range(3):
        assert await repo.poll() is None
    unchanged = wait_for_connections(git_daemon, before + 3)

    origin.commit_and_push({"jobs/web.nomad": "web v2\n"})
    assert await repo.poll() is not None
    changed = wait_for_connections(git_daemon, unchanged + 2)

    assert unchanged - before == 3  # three no-op cycles: one ls-remote each, no fetch
    assert changed - unchanged == 2  # a moved ref: ls-remote, then one fetch
    assert repo.stats.network_fetches == 2


async def test_daemon_stopped_raises_fetch_error_and_keeps_the_last_good_copy(
    git_daemon_factory, origin_factory, tmp_path: Path
) -> None:
    daemon = git_daemon_factory()
    daemon.start()
    try:
        origin = origin_factory("gone", daemon.base)
        origin.commit_and_push({"jobs/web.nomad": "web\n"})
        repo = GitRepository(url=daemon.url(origin), ref="main", directory=tmp_path / "wc")
        good = await repo.poll()
    finally:
        daemon.stop()
    origin.commit_and_push({"jobs/web.nomad": "web v2\n"})

    with pytest.raises(FetchError, match=r"cannot list refs of git://127\.0\.0\.1"):
        await repo.poll()
    with pytest.raises(FetchError, match="cannot fetch refs/heads/main"):
        await repo.fetch()

    assert repo.current is good
    assert repo.read_file("jobs/web.nomad") == b"web\n"

    daemon.start()  # the remote comes back on the same address: the next cycle catches up
    caught_up = await repo.poll()
    assert caught_up is not None
    assert caught_up.changed == {"jobs/web.nomad"}
