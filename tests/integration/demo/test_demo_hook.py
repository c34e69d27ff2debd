"""The demo repository's post-commit hook against the operator's real webhook receiver over HTTP.

A commit in a repository made by `create_repository` runs the installed hook (this Python, `demo_webhook`), which
must sign the push so that the operator's own receiver accepts it for the followed branch; with a wrong secret the
receiver refuses it and the hook says so on stderr while the commit itself still succeeds. A foreign work directory
is refused and left as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from aiohttp import web

from nomad_operator.demo_repository import DemoSetupError, create_repository, install_hook, prepare_workdir
from nomad_operator.server.webhooks import FileSecret, PushEvent, WebhookReceiver, WebhookSource


class OneSource:
    def __init__(self, secret_file: Path) -> None:
        self.source = WebhookSource(name="demo", ref="main", secret=FileSecret(secret_file))

    def lookup(self, name: str) -> WebhookSource | None:
        return self.source if name == "demo" else None


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[str, list[PushEvent], Path]]:
    secret_file = tmp_path / "receiver-secret"
    pushes: list[PushEvent] = []

    def on_push(source: str, event: PushEvent) -> Awaitable[None] | None:
        pushes.append(event)
        return None

    app = web.Application()
    WebhookReceiver(sources=OneSource(secret_file), on_push=on_push).install(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hooks/demo", pushes, secret_file
    finally:
        await runner.cleanup()


async def _commit(repo: Path, message: str) -> tuple[int, str]:
    (repo / "jobs" / "extra.nomad").write_text(f'job "{message}" {{}}\n')
    for args in (["add", "-A"], ["commit", "-qm", message]):
        process = await asyncio.create_subprocess_exec("git", "-C", str(repo), *args, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        if process.returncode != 0:
            return process.returncode or 1, stderr.decode()
    return 0, stderr.decode()


async def test_commit_sends_a_push_the_operator_accepts(
    tmp_path: Path, project_root: Path, receiver: tuple[str, list[PushEvent], Path]
) -> None:
    url, pushes, receiver_secret = receiver
    repository = create_repository(prepare_workdir(tmp_path / "work"), project_root / "jobs")
    receiver_secret.write_bytes(repository.secret_file.read_bytes())
    install_hook(repository, [url])
    code, stderr = await _commit(repository.repo, "one")
    assert code == 0
    assert "202 fetch requested" in stderr, stderr
    head = (repository.repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert [(p.ref, p.after) for p in pushes] == [("refs/heads/main", head)]


async def test_wrong_secret_is_refused_and_the_commit_kept(
    tmp_path: Path, project_root: Path, receiver: tuple[str, list[PushEvent], Path]
) -> None:
    url, pushes, receiver_secret = receiver
    repository = create_repository(prepare_workdir(tmp_path / "work"), project_root / "jobs")
    receiver_secret.write_text("not-the-demo-secret")
    install_hook(repository, [url])
    code, stderr = await _commit(repository.repo, "two")
    assert code == 0  # a post-commit hook never undoes the commit
    assert "failed: 401" in stderr, stderr
    assert "bad X-Signature" in stderr, stderr
    assert pushes == []


def test_foreign_directory_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(DemoSetupError, match="not made by the demo"):
        prepare_workdir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
