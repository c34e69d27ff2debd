"""The demo's work directory: a git repository made from the project's `jobs/`, its webhook hook and secret, logs.

The demo writes into a folder on the user's disk and later deletes it, so the hazard is deleting something that is
not ours: a work directory is only used when it is empty or carries the demo's marker file, and only a marked one
is ever emptied or removed. The repository gets its own committer identity (a fresh machine may have no git
identity, and the user's commits in the demo must work), and a `post-commit` hook that runs this Python's
`nomad_operator.demo_webhook` with the secret from a file beside the repository (mode 0600), never on a command line
that the process list would show. Plain `git` through subprocess: a few commands, once, before anything runs.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nomad_operator.demo_defaults import (
    DEFAULT_WORKDIR_NAME,
    GIT_AUTHOR_EMAIL,
    GIT_AUTHOR_NAME,
    REPO_DIR,
    SECRET_FILE,
    SOURCE_REF,
    WEBHOOK_SECRET_BYTES,
    WORKDIR_MARKER,
)

GIT_TIMEOUT_SECONDS = 30.0
IMAGE_JOBS_DIR = Path("/usr/share/nomad-operator/jobs")  # where the Containerfile puts jobs/


class DemoSetupError(Exception):
    """The work directory or the repository cannot be made; the message says why and what to do."""


def checkout_root() -> Path | None:
    """The project checkout this package runs from (an editable install), if it is one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "jobs").is_dir() else None


def default_jobs_dir() -> Path | None:
    root = checkout_root()
    if root is not None:
        return root / "jobs"
    return IMAGE_JOBS_DIR if IMAGE_JOBS_DIR.is_dir() else None


def default_workdir() -> Path:
    return (checkout_root() or Path.cwd()) / DEFAULT_WORKDIR_NAME


def prepare_workdir(path: Path) -> Path:
    """An empty, marked work directory at `path`; refuses a non-empty folder the demo did not make."""
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise DemoSetupError(f"work directory {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not (path / WORKDIR_MARKER).is_file():
            raise DemoSetupError(f"work directory {path} is not empty and was not made by the demo; "
                                 "choose another with --workdir (nothing was changed)")  # fmt: skip
        empty_workdir(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / WORKDIR_MARKER).write_text("made by `nomad-operator demo`; removed when the demo stops\n")
    return path


def empty_workdir(path: Path) -> None:
    if not (path / WORKDIR_MARKER).is_file():
        return
    for child in path.iterdir():
        if child.name == WORKDIR_MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def remove_workdir(path: Path) -> None:
    """Removes a work directory the demo made (and nothing else)."""
    if (path / WORKDIR_MARKER).is_file():
        shutil.rmtree(path, ignore_errors=True)


def _git(repo: Path, *args: str) -> None:
    command = ["git", "-C", str(repo), *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DemoSetupError(f"cannot run git ({error}); install git and try again") from None
    if result.returncode != 0:
        raise DemoSetupError(f"`git {' '.join(args)}` failed: {result.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class DemoRepository:
    workdir: Path
    repo: Path
    secret_file: Path

    @property
    def url(self) -> str:
        return self.repo.as_uri()


def create_repository(workdir: Path, jobs_dir: Path) -> DemoRepository:
    """`<workdir>/repo` with `jobs/` committed on branch main, and the webhook secret beside it."""
    if not jobs_dir.is_dir() or not any(jobs_dir.glob("*.nomad")):
        raise DemoSetupError(f"no job files (*.nomad) in {jobs_dir}; give the project's jobs/ folder with --jobs")
    repo = workdir / REPO_DIR
    shutil.copytree(jobs_dir, repo / "jobs", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(repo, "init", "-q", "-b", SOURCE_REF)
    _git(repo, "config", "user.name", GIT_AUTHOR_NAME)
    _git(repo, "config", "user.email", GIT_AUTHOR_EMAIL)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "The cluster's jobs, from nomad-operator's jobs/")
    secret_file = workdir / SECRET_FILE
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(WEBHOOK_SECRET_BYTES) + "\n")
    return DemoRepository(workdir=workdir, repo=repo, secret_file=secret_file)


def hook_script(*, python: str, secret_file: Path, urls: Sequence[str]) -> str:
    """The `post-commit` hook: the webhook sender, run by this Python (no curl needed)."""
    command = [python, "-m", "nomad_operator.demo_webhook", "--secret-file", str(secret_file)]
    for url in urls:
        command += ["--url", url]
    return ("#!/bin/sh\n"
            "# Written by `nomad-operator demo`: after each commit, send a signed push webhook to the operator,\n"
            "# as a git host would after a push.\n"
            f"exec {shlex.join(command)}\n")  # fmt: skip


def install_hook(repository: DemoRepository, urls: Sequence[str], *, python: str = sys.executable) -> Path:
    hook = repository.repo / ".git" / "hooks" / "post-commit"
    hook.write_text(hook_script(python=python, secret_file=repository.secret_file, urls=urls))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return hook
