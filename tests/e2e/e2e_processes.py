"""What the end-to-end tests share: the CLI as processes, a git repository of the project's `jobs/`, and reading a
running process over HTTP (its `/status`, its `/metrics`, the simulator's API).

Why one module: every e2e test starts `nomad-operator sim` or `run` processes, and each copy of the code that did it
handled the hazards a little differently. The hazards: a process killed without warning leaves its children (the
jobspec pool) behind unless its whole process group goes, so every process here leads its own session and its group
is SIGKILLed on the way out; a simulator asked before it listens fails a test for nothing, so its address is read
from the line it prints once it listens; git on a clean machine has no identity, so commits carry one from the
environment; and a process that must be stopped off the event loop (its shutdown talks to a simulator in this
test's loop) is waited for in a thread.

Tests import this module by name (`from e2e_processes import ...`): pytest runs in rootdir mode without packages, so
a sibling of the test file is importable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp

from nomad_operator.testing import eventually

T = TypeVar("T")

STOP_WAIT_S = 20.0
"""How long a SIGTERMed process may take to exit before it is SIGKILLed."""
HTTP_TIMEOUT_S = 5.0
CLI_TIMEOUT_S = 60.0
WAIT_S = 45.0
POLL_S = 0.1
NOT_YET = (aiohttp.ClientError, TimeoutError)
"""What a process that is not answering yet raises: polled past, not failed on."""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
JOBS_GLOB = "jobs/*.nomad"
DEFAULT_SOURCE = "default/default"
"""The status document of `run`'s single source."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_argv(*args: str) -> list[str]:
    """`nomad-operator ARGS` with this interpreter, so the test runs the installed package it imports."""
    return [sys.executable, "-m", "nomad_operator", *args]


# -- processes ----------------------------------------------------------------------------------------------------


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL what is left of the process's group: a `run` killed without warning leaves its jobspec pool behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def stop(process: subprocess.Popen[Any], *, wait_s: float = STOP_WAIT_S) -> None:
    """SIGTERM and wait (SIGKILL after `wait_s`), then clear the process's group; every process here leads its own."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    kill_group(process)


async def stop_all(processes: Iterable[subprocess.Popen[Any]]) -> None:
    """`stop` each at once, off the loop: a simulator in this test's loop must answer their shutdown."""
    await asyncio.gather(*(asyncio.to_thread(stop, process) for process in processes))


def start_in_session(argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdout: int | IO[Any] | None = None,
                     stderr: int | IO[Any] | None = None, text: bool = False) -> subprocess.Popen[Any]:  # fmt: skip
    """Start a process that leads its own session (and so its own process group, which `stop` clears)."""
    return subprocess.Popen(list(argv), env=None if env is None else dict(env), stdout=stdout, stderr=stderr,
                            text=text, start_new_session=True)  # fmt: skip


@contextlib.contextmanager
def simulator_process(*flags: str, log: Path | None = None) -> Iterator[str]:
    """A `nomad-operator sim` process on a free port of 127.0.0.1, yielding its address once it says it listens.

    Its stderr goes to `log` (or nowhere): a pipe that nobody reads would block the simulator once it fills."""
    with contextlib.ExitStack() as files:
        errors: int | IO[bytes] = files.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        process = start_in_session(cli_argv("sim", "--listen", "127.0.0.1:0", *flags), stdout=subprocess.PIPE,
                                   stderr=errors)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert "listening on" in line, line + (log.read_text(errors="replace") if log is not None else "")
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        stop(process)


@dataclass
class RunProcess:
    """One `nomad-operator run` process and the address of its HTTP server."""

    process: subprocess.Popen[bytes]
    address: str


def spawn_run(nomad_address: str, *, settings: Mapping[str, str] | None = None, args: Sequence[str] = (),
              log: Path | None = None, base_env: Mapping[str, str] | None = None) -> RunProcess:  # fmt: skip
    """`nomad-operator run ARGS` against `nomad_address` on a free port, configured by `NOMAD_OPERATOR_*` settings.

    The environment is `base_env` (this process's by default) with the settings over it; output goes to `log`
    (kept by pytest in tmp_path for a failure's post-mortem) or nowhere."""
    listen = f"127.0.0.1:{free_port()}"
    env = {**(os.environ if base_env is None else base_env), "NOMAD_ADDR": nomad_address,
           "NOMAD_OPERATOR_LISTEN": listen, **(settings or {})}  # fmt: skip
    with contextlib.ExitStack() as files:
        output: int | IO[bytes] = files.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        process = start_in_session(cli_argv("run", *args), env=env, stdout=output, stderr=subprocess.STDOUT)
    return RunProcess(process, f"http://{env['NOMAD_OPERATOR_LISTEN']}")


def repository_settings(repository: Path, **more: str) -> dict[str, str]:
    """The `run` settings that reconcile `jobs/*.nomad` from a local repository, plus `more` (NAME without prefix)."""
    settings = {"NOMAD_OPERATOR_REPO": repository.as_uri(), "NOMAD_OPERATOR_PATH": JOBS_GLOB}
    return {**settings, **{f"NOMAD_OPERATOR_{name}": value for name, value in more.items()}}


@dataclass
class RunProcesses:
    """`run` processes started by one test, all stopped (with their groups) when it ends."""

    nomad_address: str
    logs: Path
    started: list[RunProcess] = field(default_factory=list)

    def start(self, *, settings: Mapping[str, str] | None = None, args: Sequence[str] = (),
              base_env: Mapping[str, str] | None = None) -> RunProcess:  # fmt: skip
        log = self.logs / f"run-{len(self.started)}.log"
        running = spawn_run(self.nomad_address, settings=settings, args=args, log=log, base_env=base_env)
        self.started.append(running)
        return running

    def stop_all(self) -> None:
        for running in self.started:
            stop(running.process)

    async def stop_all_off_loop(self) -> None:
        await stop_all(running.process for running in self.started)


def cli(*args: str, env: Mapping[str, str] | None = None, unset: Iterable[str] = (), cwd: Path | None = None,
        stdin: str | None = None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`nomad-operator ARGS` to completion, with `env` over this process's environment and `unset` removed from it."""
    environment = {**os.environ, **(env or {})}
    for name in unset:
        environment.pop(name, None)
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, env=environment, cwd=cwd, input=stdin,
                          timeout=timeout, check=False)  # fmt: skip


async def cli_async(*args: str, env: Mapping[str, str], deadline_s: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
    """`nomad-operator ARGS` without blocking the loop (a simulator in it must answer): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *cli_argv(*args), env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), deadline_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- git ----------------------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})  # fmt: skip
    return done.stdout.strip()


def commit_files(repo: Path, files: Mapping[str, str], *, message: str = "change") -> str:
    """Write `files` (paths relative to `repo`), commit everything, and return the new revision."""
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def empty_repository(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def jobs_repository(repo: Path, project_root: Path) -> Path:
    """A repository at `repo` whose one commit on `main` holds a copy of the project's `jobs/`."""
    shutil.copytree(project_root / "jobs", repo / "jobs")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "cluster jobs")
    return repo


# -- reading processes over HTTP ------------------------------------------------------------------------------------


def request_json(address: str, path: str, *, method: str = "GET", body: Any = None) -> Any:
    """A blocking JSON request (None for an empty answer); for tests that do not run an event loop."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(address + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_for(check: Callable[[], Any], what: str, *, deadline_s: float, interval_s: float = 0.05,
             ignore: tuple[type[BaseException], ...] = (OSError,)) -> Any:  # fmt: skip
    """Poll `check` until it returns something truthy; what it raises of `ignore` counts as "not yet"."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ignore:
            last = None
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s:.0f}s waiting for {what}; last: {last!r}")


async def fetch_json(http: aiohttp.ClientSession, url: str, *, method: str = "GET", body: Any = None) -> Any:
    async with http.request(method, url, json=body, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as answer:
        answer.raise_for_status()
        return json.loads(await answer.text())


async def post(http: aiohttp.ClientSession, url: str) -> None:
    async with http.post(url, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as answer:
        answer.raise_for_status()


async def until(check: Callable[[], Awaitable[T | None]], what: str, *, within: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; a process not answering yet counts as "not yet"."""
    return await eventually(check, timeout=within, interval=POLL_S, what=what, ignore=NOT_YET)


async def status_documents(http: aiohttp.ClientSession, address: str) -> dict[str, Any]:
    """A `run` process's `/status`: one document per source, by `namespace/name`."""
    documents: dict[str, Any] = await fetch_json(http, f"{address}/status")
    return documents


async def metrics_text(http: aiohttp.ClientSession, address: str) -> str:
    async with http.get(f"{address}/metrics", timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as answer:
        return await answer.text()


def gauge_values(metrics: str, name: str) -> list[str]:
    """The values of an unlabelled metric in Prometheus text."""
    return [line.split()[-1] for line in metrics.splitlines() if line.startswith(f"{name} ")]


async def is_leader(http: aiohttp.ClientSession, address: str) -> bool:
    """The process's `nomad_operator_is_leader` gauge; False while it cannot be reached."""
    try:
        metrics = await metrics_text(http, address)
    except NOT_YET:
        return False
    return gauge_values(metrics, "nomad_operator_is_leader") == ["1.0"]
