"""`nomad-operator demo`: the whole product on one machine, in one command, cleaned up on Ctrl-C.

A new user's first five minutes: a simulated three-node arm64 cluster (pi1..pi3) as a child process, a git
repository made from the project's `jobs/` with a hook that sends a signed webhook on every commit, two operator
replicas (`nomad-operator run`, leader election decides which one writes) as child processes, and a live view of
what happens: sync progress, each job's sync and health, node states. Once every job is healthy it prints
`demo ready` and what to try: unplug a node, plug it back, commit a change.

It builds only on stable contracts (the CLI's flags, Nomad's HTTP API, the operator's HTTP endpoints), never on the
controllers' Python internals. The hazards are the ones of any supervisor: a busy port (the default 4646 falls back
to a free port and the printed commands carry `--address`; a port given explicitly that is busy is an error before
anything starts), a child that dies (the demo stops with that child's log tail and a non-zero exit), and leftovers
(children are stopped in order and reaped on SIGINT, SIGTERM and errors; the work directory is removed unless
`--keep-workdir` or an error asks to keep its logs). Pieces: `demo_repository` (work dir, repo, hook), `demo_webhook`
(the hook), `demo_processes`, `demo_observer` (HTTP reads), `demo_view`
(pure snapshot, changes, screen), `demo_console` (output).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from nomad_operator import demo_defaults as defaults
from nomad_operator.cli_arguments import decimal_number, go_duration, time_scale, whole_number
from nomad_operator.demo_console import DemoConsole
from nomad_operator.demo_observer import ClusterUnreachable, DemoObserver
from nomad_operator.demo_processes import (
    Child,
    Endpoints,
    PortBusy,
    child_environment,
    choose_ports,
    log_tail,
    start_child,
    stop_children,
)
from nomad_operator.demo_repository import (
    DemoRepository,
    DemoSetupError,
    create_repository,
    default_jobs_dir,
    default_workdir,
    install_hook,
    prepare_workdir,
    remove_workdir,
)
from nomad_operator.demo_view import DemoSnapshot, describe_changes, is_ready
from nomad_operator.durations import parse_duration, to_seconds

EXIT_STOPPED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else ""
EPILOG = """\
what to try once it prints `demo ready` (in another terminal; the demo prints these with the right addresses):
  nomad-operator sim unplug pi2     pull pi2's plug: it goes down, each job shows 2/3 with the reason (distinct_hosts)
  nomad-operator sim plug pi2       plug it back: the blocked placements land, every job is healthy again
  cd .demo/repo && edit jobs/whoami.nomad && git commit -am change
                                    the post-commit hook sends a signed webhook; the operator applies the new version

timings: Nomad marks a silent node down 20-30 s after its last heartbeat and waits min_healthy_time (consul: 30 s)
before a deployment is healthy. The demo shortens both (--heartbeat-ttl, --heartbeat-grace, --deployment-time-scale)
and says so at start. Stop with Ctrl-C (or SIGTERM): the replicas, then the cluster, are stopped and the work
directory is removed (unless --keep-workdir). Exit code 0 after a stop, 1 when a child dies or a port is busy."""


class DemoFailed(Exception):
    """Ends the demo with a message and EXIT_FAILED; the work directory is kept for its logs."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during start-up."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; use a number from 0 (any free port) to 65535")
    return int(text)


_NODE_COUNT = whole_number("node count", low=1, high=defaults.MAX_NODES)
_REPLICA_COUNT = whole_number("replica count", low=1, high=defaults.MAX_REPLICAS)
_REFRESH_SECONDS = decimal_number("refresh", low=defaults.MIN_REFRESH_SECONDS, high=defaults.MAX_REFRESH_SECONDS)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the operator on a simulated 3-node cluster and a local git repository, live",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="work directory for the repository, secret and logs "
                        f"(default {defaults.DEFAULT_WORKDIR_NAME}/ in the checkout); must be empty or the demo's own")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the work directory when the demo stops")
    parser.add_argument("--port", type=_port, help=f"port of the simulated cluster's Nomad API (default "
                        f"{defaults.DEFAULT_SIM_PORT}, or a free port when it is busy; a given port must be free)")
    parser.add_argument("--operator-port", type=_port, help="port of the first operator replica's HTTP server "
                        f"(default {defaults.DEFAULT_OPERATOR_PORT}, or a free port when it is busy); others get "
                        "free ports")
    parser.add_argument("--nodes", type=_NODE_COUNT, default=defaults.DEFAULT_NODES,
                        help=f"number of simulated nodes pi1..piN (default {defaults.DEFAULT_NODES})")
    parser.add_argument("--replicas", type=_REPLICA_COUNT, default=defaults.DEFAULT_REPLICAS,
                        help=f"operator replicas; one leads, the others stand by (default {defaults.DEFAULT_REPLICAS})")
    parser.add_argument("--jobs", type=Path, help="folder of job files to start the repository from "
                        "(default: the project's jobs/)")
    parser.add_argument("--heartbeat-ttl", type=go_duration, default=defaults.DEFAULT_HEARTBEAT_TTL, metavar="DURATION",
                        help=f"simulated nodes' heartbeat TTL (default {defaults.DEFAULT_HEARTBEAT_TTL}; Nomad: 10s)")
    parser.add_argument("--heartbeat-grace", type=go_duration, default=defaults.DEFAULT_HEARTBEAT_GRACE,
                        metavar="DURATION", help="grace after the TTL before a silent node is down "
                        f"(default {defaults.DEFAULT_HEARTBEAT_GRACE}; Nomad: 10s)")
    parser.add_argument("--deployment-time-scale", type=time_scale, default=defaults.DEFAULT_DEPLOYMENT_TIME_SCALE,
                        metavar="FACTOR", help="deployments wait each job's min_healthy_time times this "
                        f"(default {defaults.DEFAULT_DEPLOYMENT_TIME_SCALE}; 1 is Nomad's own timing)")
    parser.add_argument("--poll-interval", type=go_duration, default=defaults.DEFAULT_POLL_INTERVAL, metavar="DURATION",
                        help="the operator's git poll interval; commits arrive by webhook at once "
                        f"(default {defaults.DEFAULT_POLL_INTERVAL})")
    parser.add_argument("--refresh", type=_REFRESH_SECONDS, default=defaults.DEFAULT_REFRESH_SECONDS, metavar="SECONDS",
                        help=f"how often the view is refreshed (default {defaults.DEFAULT_REFRESH_SECONDS})")
    parser.add_argument("--plain", action="store_true",
                        help="print one line per change even on a terminal (the default when stdout is not a TTY)")
    parser.set_defaults(handler=handle_demo)


def handle_demo(args: argparse.Namespace) -> int:
    return asyncio.run(Demo(args, out=sys.stdout).run())


def cli_command() -> str:
    """How to call nomad-operator from another terminal: the script beside this Python, unless it is on PATH."""
    if shutil.which("nomad-operator"):
        return "nomad-operator"
    script = Path(sys.executable).parent / "nomad-operator"
    return shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m nomad_operator"


def try_commands(*, endpoints: Endpoints, repository: DemoRepository, nodes: int) -> list[str]:
    """What to try, with the addresses this run really uses."""
    command = cli_command()
    # `sim unplug` goes to $NOMAD_ADDR, else 4646: name the address unless that already is the demo's cluster.
    implied = os.environ.get("NOMAD_ADDR") or f"http://{defaults.LOCALHOST}:{defaults.DEFAULT_SIM_PORT}"
    address = "" if implied.rstrip("/") == endpoints.nomad_addr else f" --address {endpoints.nomad_addr}"
    node = "pi2" if nodes >= 2 else "pi1"
    lines = ["Try, in another terminal:",
             f"  {command} sim unplug {node}{address}",
             f"      pull {node}'s plug: it goes down, jobs on it show degraded with the reason",
             f"  {command} sim plug {node}{address}",
             "      plug it back: the blocked placements land, every job is healthy again"]  # fmt: skip
    whoami = repository.repo / "jobs" / "whoami.nomad"
    match = re.search(r'default\s*=\s*"[^"]*whoami:([^"]+)"', whoami.read_text()) if whoami.is_file() else None
    repo = shlex.quote(str(repository.repo))
    if match:
        old, new = match.group(1), "v1.10.3" if match.group(1) != "v1.10.3" else "v1.10.2"
        lines.append(f"  cd {repo} && sed -i 's/whoami:{old}/whoami:{new}/' jobs/whoami.nomad && "
                     f"git commit -am 'whoami {new}'")  # fmt: skip
    else:
        lines.append(f"  cd {repo}, change a file in jobs/, then git commit -am 'my change'")
    lines.append("      the post-commit hook sends a signed webhook; the operator applies it and the table shows it")
    lines.append(f"  {command} status --server {endpoints.replicas()[0][1]}    the operator's own status table")
    lines.append("Ctrl-C stops the demo and everything it started.")
    return lines


class Demo:
    """One run: set up, start the children, watch until a signal or a failure, clean up."""

    def __init__(self, args: argparse.Namespace, *, out: TextIO) -> None:
        self.args = args
        self.console = DemoConsole(out, live=out.isatty() and not args.plain)
        self.stop = asyncio.Event()
        self.children: list[Child] = []
        self.workdir: Path | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)
        code = EXIT_STOPPED
        try:
            await self._run()
        except Interrupted:
            pass
        except DemoSetupError as error:
            self.console.note(f"error: {error}")
            code = EXIT_USAGE
        except (DemoFailed, PortBusy) as error:
            self.console.note(f"error: {error}")
            code = EXIT_FAILED
        finally:
            self.console.close()
            if self.children:
                self.console.note("stopping the operator replicas, then the cluster ...")
            # Operators first: they release the leader lock while the cluster still answers.
            await stop_children(list(reversed(self.children)))
            self._finish_workdir(failed=code != EXIT_STOPPED)
        return code

    def _finish_workdir(self, *, failed: bool) -> None:
        if self.workdir is None:
            return
        if failed or self.args.keep_workdir:
            self.console.note(f"kept the work directory {self.workdir} (logs: *.log)")
        else:
            remove_workdir(self.workdir)
            self.console.note(f"demo stopped; removed {self.workdir}")

    async def _run(self) -> None:
        args = self.args
        endpoints = choose_ports(sim_port=args.port, operator_port=args.operator_port, replicas=args.replicas)
        jobs_dir = args.jobs or default_jobs_dir()
        if jobs_dir is None:
            raise DemoSetupError("cannot find the project's jobs/ folder; give it with --jobs DIR")
        self.workdir = prepare_workdir(args.workdir or default_workdir())
        repository = create_repository(self.workdir, jobs_dir)
        install_hook(repository, [f"{base}/hooks/{defaults.SOURCE_NAME}" for _, base in endpoints.replicas()])
        self.console.header = self._header(endpoints, repository)
        for line in self.console.header:
            self.console.note(line)
        env = child_environment(nomad_addr=endpoints.nomad_addr)
        async with DemoObserver(nomad_addr=endpoints.nomad_addr, replicas=endpoints.replicas()) as observer:
            await self._start_cluster(endpoints, env, observer)
            await self._start_operators(endpoints, repository, env, observer)
            await self._watch(observer, endpoints, repository)

    def _header(self, endpoints: Endpoints, repository: DemoRepository) -> list[str]:
        args, workdir = self.args, repository.workdir
        replicas = "  ".join(f"{name} {base}" for name, base in endpoints.replicas())
        seconds = to_seconds(parse_duration(args.heartbeat_ttl)) + to_seconds(parse_duration(args.heartbeat_grace))
        return [
            f"nomad-operator demo: {args.nodes} simulated {defaults.DEMO_ARCH} nodes (pi1..pi{args.nodes}), "
            f"{args.replicas} operator replica(s), a git repository",
            f"  cluster   {endpoints.nomad_addr}   (the Nomad API; log {workdir / defaults.SIM_LOG})",
            f"  operator  {replicas}   (logs {workdir}/operator-N.log)",
            f"  repo      {repository.repo}   (commits send a signed webhook to /hooks/{defaults.SOURCE_NAME})",
            f"  timings   heartbeat TTL {args.heartbeat_ttl} + grace {args.heartbeat_grace}: an unplugged node is "
            f"down within ~{seconds:g} s; deployments wait {args.deployment_time_scale:g} x min_healthy_time",
        ]  # fmt: skip

    def _check_children(self) -> None:
        for child in self.children:
            if child.exit_code is not None:
                tail = log_tail(child.log_path)
                raise DemoFailed(f"the {child.name} exited with code {child.exit_code}; the end of its log "
                                 f"{child.log_path}:\n{tail}")  # fmt: skip

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _wait_until(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + defaults.STARTUP_TIMEOUT_SECONDS
        while not self.stop.is_set():
            self._check_children()
            if await check():
                return
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what} not ready after {defaults.STARTUP_TIMEOUT_SECONDS:g} s; see the logs "
                                 f"in {self.workdir}")  # fmt: skip
            await self._pause(defaults.STARTUP_POLL_SECONDS)
        raise Interrupted

    async def _start_cluster(self, endpoints: Endpoints, env: dict[str, str], observer: DemoObserver) -> None:
        args = self.args
        assert self.workdir is not None
        argv = [sys.executable, "-m", "nomad_operator", "sim",
                "--listen", f"{defaults.LOCALHOST}:{endpoints.sim_port}", "--nodes", str(args.nodes),
                "--arch", defaults.DEMO_ARCH, "--heartbeat-ttl", args.heartbeat_ttl,
                "--heartbeat-grace", args.heartbeat_grace,
                "--deployment-time-scale", str(args.deployment_time_scale)]  # fmt: skip
        self.children.append(await start_child("simulated cluster", argv, log_path=self.workdir / defaults.SIM_LOG,
                                               env=env))  # fmt: skip

        async def nodes_ready() -> bool:
            try:
                nodes = await observer.nodes()
            except ClusterUnreachable:
                return False
            return len(nodes) == args.nodes and all(n.get("Status") == "ready" for n in nodes)

        await self._wait_until("the simulated cluster", nodes_ready)

    async def _start_operators(
        self, endpoints: Endpoints, repository: DemoRepository, env: dict[str, str], observer: DemoObserver
    ) -> None:
        assert self.workdir is not None
        for index, (name, base) in enumerate(endpoints.replicas(), start=1):
            copies = self.workdir / name
            copies.mkdir()
            argv = [sys.executable, "-m", "nomad_operator", "run", "--repo", repository.url,
                    "--ref", defaults.SOURCE_REF, "--name", defaults.SOURCE_NAME, "--path", defaults.JOB_GLOB,
                    "--interval", self.args.poll_interval, "--webhook-secret-file", str(repository.secret_file),
                    "--listen", base.removeprefix("http://"), "--workdir", str(copies)]  # fmt: skip
            log_path = self.workdir / f"operator-{index}.log"
            self.children.append(await start_child(f"operator {name}", argv, log_path=log_path, env=env))
        for name, base in endpoints.replicas():
            await self._wait_until(f"the operator {name}", functools.partial(observer.healthy, base))

    async def _watch(self, observer: DemoObserver, endpoints: Endpoints, repository: DemoRepository) -> None:
        started = time.monotonic()
        previous: DemoSnapshot | None = None
        unreachable = False
        ready = False
        while not self.stop.is_set():
            self._check_children()
            try:
                snapshot = await observer.snapshot()
            except ClusterUnreachable as error:
                if not unreachable:
                    self.console.changes([f"cluster unreachable: {error}"])
                unreachable = True
                await self._pause(self.args.refresh)
                continue
            if unreachable:
                self.console.changes(["cluster answers again"])
            unreachable = False
            self.console.changes(describe_changes(previous, snapshot))
            self.console.show(snapshot)
            previous = snapshot
            if not ready and is_ready(snapshot):
                ready = True
                jobs = len(snapshot.jobs)
                self.console.ready([
                    f"demo ready: {jobs} jobs in sync and healthy on {len(snapshot.nodes)} nodes after "
                    f"{time.monotonic() - started:.1f} s; {snapshot.leader} leads",
                    *try_commands(endpoints=endpoints, repository=repository, nodes=self.args.nodes),
                ])  # fmt: skip
            await self._pause(self.args.refresh)
