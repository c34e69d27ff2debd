"""One git source's working copy: ask the remote cheaply, fetch shallowly, check the tree, then check it out.

A GitOps cycle runs every minute and on every push, so its common case, "nothing moved", must cost one `git ls-remote`
and nothing else (`poll()`). When the ref did move, only its tip is fetched (`--depth 1`), into a private ref, and the
tree is listed and checked against the limits and the symlink policy *before* checkout: a rejected or failed fetch
leaves the last good working copy in place and readable. Force-pushes and rewritten history need no special case,
because the working copy is always forced to the fetched commit, never merged.

gitpython's traps shape the I/O: every git call runs in a thread (`asyncio.to_thread`), each `Repo` is opened in a
`with` block so its two `git cat-file` children end with it, and a thread lock keeps a cancelled-but-still-running
fetch from overlapping the next one. Credentials reach git only through the per-command environment (see gitauth).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from git import Repo
from git.cmd import Git

from nomad_operator.controllers.gitops.git_errors import (
    CommitNotFound,
    FetchError,
    FileNotInRevision,
    LimitExceeded,
    SourceConfigError,
)
from nomad_operator.controllers.gitops.gitauth import BASE_GIT_ENVIRONMENT, GitAuth, NoAuth, check_url, redact_url
from nomad_operator.controllers.gitops.pathglobs import DEFAULT_JOB_PATHS, PathGlobs
from nomad_operator.controllers.gitops.source_ref import SourceRef, parse_ls_remote, pick_remote_commit
from nomad_operator.controllers.gitops.tree_policy import (
    MODE_SYMLINK,
    FetchLimits,
    FileInfo,
    build_files,
    changed_paths,
    check_limits,
    parse_ls_tree,
    resolve_symlinks,
)

DEFAULT_REMOTE_TIMEOUT_SECONDS = 30.0
DEFAULT_FETCH_TIMEOUT_SECONDS = 300.0
LOCAL_TIMEOUT_SECONDS = 120.0
MAX_ERROR_CHARS = 600

FETCHED_REF = "refs/nomad-operator/fetched"
SCAN_REF_PREFIX = "refs/nomad-operator/scan/"


@dataclass(frozen=True)
class Revision:
    """A checked-out commit: its files (by path) and which of them differ from the previous revision."""

    sha: str
    files: Mapping[str, FileInfo]
    changed: frozenset[str]
    previous_sha: str | None = None

    def paths(self, globs: PathGlobs = DEFAULT_JOB_PATHS) -> list[str]:
        """The files matching `globs`, sorted."""
        return globs.select(self.files)


@dataclass
class GitRepositoryStats:
    """How many round trips the repository made, so tests and metrics can prove that a no-op cycle fetched nothing."""

    remote_checks: int = 0  # git ls-remote
    network_fetches: int = 0  # git fetch
    checkouts: int = 0


@dataclass
class _GitResult:
    status: int
    stdout: bytes
    stderr: str


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_ERROR_CHARS else "..." + text[-MAX_ERROR_CHARS:]


def _git_dir_bytes(git_dir: Path) -> int:
    total = 0
    for folder, _dirs, names in os.walk(git_dir):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


class GitRepository:
    """The working copy of one source's `url` at `ref`, kept in `directory` (created if missing, never shared)."""

    def __init__(
        self,
        *,
        url: str,
        ref: str,
        directory: Path,
        auth: GitAuth | None = None,
        limits: FetchLimits | None = None,
        remote_timeout: float = DEFAULT_REMOTE_TIMEOUT_SECONDS,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
    ) -> None:
        check_url(url)
        if url.startswith("-"):
            raise SourceConfigError("repository URL must not start with '-'")
        self.url = url
        self.ref = SourceRef(ref)
        self.directory = Path(directory)
        self.auth: GitAuth = auth if auth is not None else NoAuth()
        self.auth.check(url)
        self.limits = limits if limits is not None else FetchLimits()
        self.remote_timeout = remote_timeout
        self.fetch_timeout = fetch_timeout
        self.stats = GitRepositoryStats()
        self._current: Revision | None = None
        self._remote_refname: str | None = None
        self._async_lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GitRepository(url={redact_url(self.url)!r}, ref={self.ref.text!r}, directory={str(self.directory)!r})"

    @property
    def current(self) -> Revision | None:
        """The last revision checked out by this object (None before the first successful fetch)."""
        return self._current

    # -- async API ------------------------------------------------------------------------------------------------

    async def remote_revision(self) -> str:
        """The commit the remote ref points at now: one `git ls-remote`, or no round trip for a pinned commit."""
        if self.ref.commit is not None:
            return self.ref.commit
        refname, sha = await asyncio.to_thread(self._ls_remote_sync)
        self._remote_refname = refname
        return sha

    async def fetch(self) -> Revision:
        """Fetch the ref's tip, check it, and check it out; raise and keep the last good copy on any failure."""
        async with self._async_lock:
            return await self._fetch_locked(known_sha=None)

    async def poll(self) -> Revision | None:
        """One cycle: None when the remote ref has not moved (one ls-remote), else the new checked-out revision."""
        async with self._async_lock:
            sha = await self.remote_revision()
            if self._current is not None and self._current.sha == sha:
                return None
            return await self._fetch_locked(known_sha=sha)

    async def read_files(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Several files of the current revision, read in a thread."""
        wanted = list(paths)
        return await asyncio.to_thread(lambda: {path: self.read_file(path) for path in wanted})

    def paths(self, globs: PathGlobs | Sequence[str] = DEFAULT_JOB_PATHS) -> list[str]:
        """Files of the current revision matching `globs` (default `jobs/**/*.nomad`, `jobs/**/*.nomad.hcl`)."""
        if self._current is None:
            return []
        return self._current.paths(globs if isinstance(globs, PathGlobs) else PathGlobs.of(globs))

    def read_file(self, path: str) -> bytes:
        """The bytes of `path` in the current revision; symlinks are followed inside the repository only."""
        revision = self._current
        if revision is None:
            raise FileNotInRevision(f"{path!r}: nothing has been fetched yet")
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
            raise FileNotInRevision(f"{path!r} is not a plain relative path inside the repository")
        if path not in revision.files:
            raise FileNotInRevision(f"{path!r} is not a file of revision {revision.sha[:12]}")
        root = os.path.realpath(self.directory)
        real = os.path.realpath(os.path.join(root, path))
        if not real.startswith(root + os.sep) or real.startswith(os.path.join(root, ".git") + os.sep):
            raise FileNotInRevision(f"{path!r} leads outside the repository")
        try:
            with open(real, "rb") as handle:
                data = handle.read(self.limits.max_file_bytes + 1)
        except (IsADirectoryError, FileNotFoundError) as exc:
            raise FileNotInRevision(f"{path!r} cannot be read: {exc.strerror}") from None
        if len(data) > self.limits.max_file_bytes:
            raise LimitExceeded(limit="max_file_bytes", maximum=self.limits.max_file_bytes, actual=len(data), path=path)
        return data

    # -- the work, in threads -------------------------------------------------------------------------------------

    async def _fetch_locked(self, *, known_sha: str | None) -> Revision:
        if self.ref.commit is None and self._remote_refname is None:
            known_sha = await self.remote_revision()  # learn whether the name is a branch or a tag
        revision = await asyncio.to_thread(self._fetch_sync, self._remote_refname, known_sha)
        self._current = revision
        return revision

    def _git(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = LOCAL_TIMEOUT_SECONDS
    ) -> _GitResult:
        command = [Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
        status, stdout, stderr = Git(str(self.directory)).execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            kill_after_timeout=timeout,
            env={**BASE_GIT_ENVIRONMENT, **(env or {})},
        )
        raw_err: object = stderr  # typed str, but gitpython leaves it bytes when stdout_as_string is False
        err = raw_err.decode("utf-8", "replace") if isinstance(raw_err, bytes) else str(raw_err)
        return _GitResult(status=int(status or 0), stdout=stdout, stderr=err)

    def _git_ok(self, args: Sequence[str], *, what: str) -> bytes:
        result = self._git(args)
        if result.status != 0:
            raise FetchError(f"{what} failed in {self.directory}: {_tail(result.stderr)}")
        return result.stdout

    def _ensure_working_copy(self) -> None:
        if (self.directory / ".git").is_dir():
            return
        if self.directory.exists() and any(self.directory.iterdir()):
            raise SourceConfigError(
                f"{self.directory} exists, is not empty and is not a git working copy; refusing to use it"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._git_ok(["init", "-q"], what="git init")
        # No reflog, so an old revision is unreachable (and prunable) as soon as HEAD leaves it.
        self._git_ok(["config", "core.logAllRefUpdates", "false"], what="git config")
        self._git_ok(["config", "advice.detachedHead", "false"], what="git config")

    def _ls_remote_sync(self) -> tuple[str, str]:
        with self._thread_lock:
            self._ensure_working_copy()
        self.stats.remote_checks += 1
        with self.auth.environment() as env:
            args = ["ls-remote", "--", self.url, *self.ref.candidates()]
            result = self._git(args, env=env, timeout=self.remote_timeout)
        if result.status != 0:
            raise FetchError(f"cannot list refs of {redact_url(self.url)}: {_tail(result.stderr)}")
        return pick_remote_commit(self.ref, parse_ls_remote(result.stdout.decode()), url=redact_url(self.url))

    def _has_commit(self, sha: str) -> bool:
        return self._git(["cat-file", "-e", f"{sha}^{{commit}}"]).status == 0

    def _network_fetch(self, refspecs: Sequence[str], *, env: Mapping[str, str], depth: bool) -> _GitResult:
        self.stats.network_fetches += 1
        args = ["fetch", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head"]
        if depth:
            args += ["--depth", "1"]
        elif (self.directory / ".git" / "shallow").exists():
            args.append("--unshallow")  # a commit may lie below the shallow boundary
        return self._git([*args, "--", self.url, *refspecs], env=env, timeout=self.fetch_timeout)

    def _fetch_commit(self, sha: str, env: Mapping[str, str]) -> None:
        direct = self._network_fetch([f"+{sha}:{FETCHED_REF}"], env=env, depth=True)
        if direct.status == 0:
            return
        # Servers that refuse a SHA in `want`: fetch every branch and tag, then look for the commit among them.
        scan = self._network_fetch(
            [f"+refs/heads/*:{SCAN_REF_PREFIX}heads/*", f"+refs/tags/*:{SCAN_REF_PREFIX}tags/*"], env=env, depth=False
        )
        try:
            if scan.status != 0:
                raise FetchError(f"cannot fetch from {redact_url(self.url)}: {_tail(scan.stderr)}")
            if not self._has_commit(sha):
                raise CommitNotFound(f"commit {sha} is not on the remote {redact_url(self.url)}")
            self._git_ok(["update-ref", FETCHED_REF, sha], what="git update-ref")
        finally:
            self._delete_scan_refs()

    def _delete_scan_refs(self) -> None:
        names = self._git(["for-each-ref", "--format=%(refname)", SCAN_REF_PREFIX]).stdout.decode().split()
        if not names:
            return
        with tempfile.TemporaryFile() as commands:
            commands.write("".join(f"delete {name}\n" for name in names).encode())
            commands.seek(0)
            Git(str(self.directory)).execute(
                [Git.GIT_PYTHON_GIT_EXECUTABLE or "git", "update-ref", "--stdin"],
                istream=commands,
                with_exceptions=False,
                env=BASE_GIT_ENVIRONMENT,
            )

    def _fetch_sync(self, refname: str | None, known_sha: str | None) -> Revision:
        with self._thread_lock:
            self._ensure_working_copy()
            target = self.ref.commit or known_sha
            if target is not None and self._has_commit(target):
                self._git_ok(["update-ref", FETCHED_REF, target], what="git update-ref")
            else:
                with self.auth.environment() as env:
                    if self.ref.commit is not None:
                        self._fetch_commit(self.ref.commit, env)
                    else:
                        if refname is None:  # _fetch_locked resolves it first; a guard for callers that do not
                            raise FetchError(f"ref {self.ref.text!r} was not resolved on the remote before fetching")
                        result = self._network_fetch([f"+{refname}:{FETCHED_REF}"], env=env, depth=True)
                        if result.status != 0:
                            raise FetchError(
                                f"cannot fetch {refname} from {redact_url(self.url)}: {_tail(result.stderr)}"
                            )
            sha = self._git_ok(["rev-parse", "--verify", f"{FETCHED_REF}^{{commit}}"], what="git rev-parse")
            return self._check_and_checkout(sha.decode().strip())

    def _check_and_checkout(self, sha: str) -> Revision:
        listing = self._git_ok(["ls-tree", "-r", "-l", "-z", "--full-tree", sha], what="git ls-tree")
        entries = parse_ls_tree(listing)
        git_dir = self.directory / ".git"
        try:
            check_limits(entries, self.limits, git_dir_bytes=_git_dir_bytes(git_dir))
        except LimitExceeded as exc:
            if exc.limit != "max_repository_bytes":
                raise
            # Old revisions may still sit in .git: drop everything unreachable once, then measure again.
            self._git(["gc", "--prune=now", "--quiet"])
            check_limits(entries, self.limits, git_dir_bytes=_git_dir_bytes(git_dir))
        links: dict[str, str] = {}
        symlinks = [e for e in entries if e.mode == MODE_SYMLINK]
        if symlinks:
            with Repo(self.directory) as repo:  # closing it ends its `git cat-file` children
                for entry in symlinks:
                    raw = repo.odb.stream(bytes.fromhex(entry.sha)).read()
                    links[entry.path] = raw.decode("utf-8", errors="surrogateescape")
        files = build_files(entries, resolve_symlinks(links))
        self._git_ok(["checkout", "-q", "--force", "--detach", sha], what="git checkout")
        self._git_ok(["clean", "-q", "-ffdx"], what="git clean")
        self.stats.checkouts += 1
        previous = self._current
        return Revision(
            sha=sha,
            files=files,
            changed=changed_paths(previous.files if previous is not None else None, files),
            previous_sha=previous.sha if previous is not None else None,
        )
