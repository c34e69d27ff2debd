"""`nomad-operator demo` as a process, the way a new user runs it, with the demo's own options for short timings.

The demo must reach `demo ready`; a `nomad-operator sim unplug pi2` typed as the demo printed it must show in its
output as pi2 down and the jobs degraded with the reason, and `plug` must bring them back; a commit in the demo's
repository must reach the cluster through the post-commit hook alone (the git poll is set to an hour); SIGINT must
end it with exit code 0, its children gone and its ports closed. Bad input (a busy port, a foreign work directory)
must fail clearly before anything starts, and lose nothing.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_processes import cli, cli_argv, free_port, request_json

DEADLINE_S = 45.0
FAST = ["--heartbeat-ttl", "300ms", "--heartbeat-grace", "300ms", "--deployment-time-scale", "0.02",
        "--refresh", "0.2", "--poll-interval", "1h"]  # fmt: skip
JOBS = ("consul", "fabio", "whoami")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class DemoProcess:
    """The demo with its output read line by line in a thread, so the test can wait for lines with a deadline."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(cli_argv("demo", *args),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, predicate: Callable[[str], bool], what: str, *, start: int = 0) -> tuple[int, str]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for index in range(start, len(self.lines)):
                if predicate(self.lines[index]):
                    return index, self.lines[index]
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {what}; output:\n" + "\n".join(self.lines[-60:]))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[DemoProcess, Path, int]]:
    port = free_port()
    workdir = tmp_path / "demo"
    running = DemoProcess(["--workdir", str(workdir), "--port", str(port), "--operator-port", "0", *FAST])
    try:
        yield running, workdir, port
    finally:
        running.stop()


def _contains(part: str) -> Callable[[str], bool]:
    return lambda text: part in text


def _cli(command: str) -> subprocess.CompletedProcess[str]:
    """Runs a command as the demo printed it, with this interpreter standing in for the printed executable."""
    argv = shlex.split(command)
    start = argv.index("sim") if "sim" in argv else argv.index("status")
    return cli(*argv[start:], timeout=30)


def test_demo_ready_unplug_plug_commit_and_clean_exit(demo: tuple[DemoProcess, Path, int]) -> None:
    running, workdir, port = demo
    ready, line = running.wait_line(lambda text: "demo ready" in text, "demo ready")
    assert "4 jobs in sync and healthy on 3 nodes" in line
    _, unplug = running.wait_line(lambda text: "sim unplug pi2" in text, "the unplug command", start=ready)
    _, plug = running.wait_line(lambda text: "sim plug pi2" in text, "the plug command", start=ready)
    assert f"--address http://127.0.0.1:{port}" in unplug  # not 4646, so the printed command must carry the address
    children = _children_of(running.process.pid)
    assert len(children) == 3, children  # the cluster and two operator replicas
    operator_ports = [int(p) for p in re.findall(r"replica-\d http://127\.0\.0\.1:(\d+)", "\n".join(running.lines))]
    assert len(operator_ports) == 2

    # Unplug pi2 as printed: the demo shows it down, and each three-instance job degraded with the reason.
    mark = len(running.lines)  # before the command: the demo may report the change before the CLI process exits
    result = _cli(unplug)
    assert result.returncode == 0, result.stderr
    running.wait_line(lambda text: "node pi2: ready -> down" in text, "pi2 down", start=mark)
    for job in JOBS:
        _, degraded = running.wait_line(_contains(f"job {job}: Degraded"), f"{job} degraded", start=mark)
        assert "2/3 running" in degraded, degraded
        assert "distinct_hosts" in degraded, degraded

    mark = len(running.lines)
    result = _cli(plug)
    assert result.returncode == 0, result.stderr
    # A returning node registers as initializing first (Nomad does the same); the demo may or may not catch that step.
    running.wait_line(lambda text: "node pi2:" in text and text.endswith("-> ready"), "pi2 ready again", start=mark)
    for job in JOBS:
        running.wait_line(_contains(f"job {job}: Healthy (3/3 running)"), f"{job} healthy", start=mark)

    # A commit reaches the cluster through the hook: the git poll is an hour, so only the webhook can do it.
    repo = workdir / "repo"
    whoami = repo / "jobs" / "whoami.nomad"
    text = whoami.read_text()
    assert "traefik/whoami:v1.10.4" in text
    whoami.write_text(text.replace("traefik/whoami:v1.10.4", "traefik/whoami:v1.10.3"))
    mark = len(running.lines)
    commit = subprocess.run(["git", "-C", str(repo), "commit", "-qam", "whoami v1.10.3"], capture_output=True,
                            text=True, timeout=30, check=False)  # fmt: skip
    assert commit.returncode == 0, commit.stderr
    assert commit.stderr.count("fetch requested") == 2, commit.stderr  # the hook reached both replicas
    running.wait_line(lambda text: "job whoami: version 0 -> 1" in text, "whoami's new version", start=mark)
    nomad = f"http://127.0.0.1:{port}"
    job = request_json(nomad, "/v1/job/whoami")
    assert job["Version"] == 1
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "docker.io/traefik/whoami:v1.10.3"

    # SIGINT: exit 0, every child reaped, nothing listening, the work directory removed.
    assert running.stop() == 0
    assert not [pid for pid in children if _alive(pid)]
    assert not _listening(port)
    assert not any(_listening(p) for p in operator_ports)
    assert not workdir.exists()
    assert "demo stopped" in running.lines[-1]


def test_busy_port_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            cli_argv("demo", "--workdir", str(tmp_path / "w"), "--port", str(port)),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {port}" in result.stdout, result.stdout
    assert "busy" in result.stdout, result.stdout
    assert not (tmp_path / "w").exists()


def test_foreign_work_directory_is_refused_and_kept(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    result = cli("demo", "--workdir", str(mine), "--port", "0", timeout=30)
    assert result.returncode == 2
    assert "not made by the demo" in result.stdout
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]
    assert (mine / "keep.txt").read_text() == "precious"


def test_help_explains_the_options() -> None:
    result = cli("demo", "--help", env={"COLUMNS": "200"}, timeout=30)
    assert result.returncode == 0
    for option in ("--workdir", "--keep-workdir", "--port", "--nodes", "--replicas", "--heartbeat-ttl",
                   "--deployment-time-scale", "sim unplug pi2", "Ctrl-C"):  # fmt: skip
        assert option in result.stdout, option
