"""Real git repositories for the GitOps tests: an origin made with the git CLI, and a `git daemon` on loopback.

The origin is a bare repository plus a clone to commit and push from, so tests change the remote the way a user does
(commit, push, force-push, tag). The daemon serves a folder of such origins over git:// on a free port of 127.0.0.1,
logging each connection to a file so tests can count round trips from the server's side.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.sim.server import RunningSimulator

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
DAEMON_START_SECONDS = 10.0


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


class GitOrigin:
    """A bare remote at `bare` and a clone at `work` to change it from."""

    def __init__(self, root: Path, name: str = "origin") -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("init", "-q", "-b", "main", str(self.work), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def write(self, path: str, content: str | bytes) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def symlink(self, path: str, target: str) -> None:
        link = self.work / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def remove(self, path: str) -> None:
        git("rm", "-q", "-r", path, cwd=self.work)

    def commit(self, message: str = "change", *, amend: bool = False) -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", *(["--amend"] if amend else []), "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, ref: str = "main", *, force: bool = False) -> None:
        git("push", "-q", *(["--force"] if force else []), "origin", ref, cwd=self.work)

    def commit_and_push(self, files: dict[str, str], message: str = "change") -> str:
        for path, content in files.items():
            self.write(path, content)
        sha = self.commit(message)
        self.push()
        return sha

    def tag(self, name: str, *, annotated: bool = True, push: bool = True) -> None:
        git("tag", *(["-a", "-m", name] if annotated else []), name, cwd=self.work)
        if push:
            git("push", "-q", "origin", f"refs/tags/{name}", cwd=self.work)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class GitDaemon:
    """`git daemon --export-all` over a base folder, on loopback; counts connections from its log."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.log_path = base.parent / f"{base.name}-daemon.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start serving; a restarted daemon keeps its port, so URLs handed out stay valid."""
        self.port = self.port or free_port()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        self.process = subprocess.Popen(
            [
                "git", "daemon", "--export-all", "--reuseaddr", "--verbose", "--informative-errors",
                "--log-destination=stderr", f"--base-path={self.base}", "--listen=127.0.0.1", f"--port={self.port}",
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"git daemon did not start: {self.log_path.read_text()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def url(self, origin: GitOrigin) -> str:
        return f"git://127.0.0.1:{self.port}/{origin.bare.relative_to(self.base)}"

    def connections(self) -> int:
        """Upload-pack requests served so far (each ls-remote or fetch is one)."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("Request upload-pack")


@pytest.fixture
def origin(tmp_path: Path) -> GitOrigin:
    """A fresh remote with one job file on main."""
    remote = GitOrigin(tmp_path)
    remote.write("jobs/web.nomad", 'job "web" {}\n')
    remote.write("README.md", "hello\n")
    remote.commit("initial")
    remote.push()
    return remote


@pytest.fixture(scope="module")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    """One git daemon per test module over its own base folder; tests put their origins under `daemon.base`."""
    base = tmp_path_factory.mktemp("daemon-base")
    daemon = GitDaemon(base)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def git_children() -> list[str]:
    """Command lines of git processes whose parent is this test process (lingering `git cat-file` and the like)."""
    me = str(os.getpid())
    found: list[str] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if fields[1] != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                line = cmd.read().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if "git" in line:
            found.append(line)
    return found


@pytest.fixture
def git_daemon_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], GitDaemon]]:
    """Daemons of a test's own (to stop and restart them); all are stopped after the test."""
    made: list[GitDaemon] = []

    def make() -> GitDaemon:
        daemon = GitDaemon(tmp_path_factory.mktemp("own-daemon"))
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()


@pytest.fixture
def origin_factory(tmp_path: Path) -> Callable[..., GitOrigin]:
    """Make more remotes: `origin_factory(name, root=None)`; root defaults to the test's tmp_path."""

    def make(name: str, root: Path | None = None) -> GitOrigin:
        return GitOrigin(root if root is not None else tmp_path, name)

    return make


@pytest.fixture
def git_cli() -> Callable[..., str]:
    """Run the git CLI with a test identity: `git_cli("log", cwd=path)`."""
    return git


@pytest.fixture
def lingering_git_children() -> Callable[[], list[str]]:
    """A probe listing git processes still parented by this test process."""
    return git_children


@pytest.fixture
async def nomad(sim: RunningSimulator) -> AsyncIterator[NomadClient]:
    """A client of the test's simulator; each module brings its own `sim` fixture, with the timings it needs."""
    async with NomadClient(NomadSettings(address=sim.address)) as client:
        yield client
