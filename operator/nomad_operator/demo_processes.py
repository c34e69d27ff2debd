"""The demo's child processes (the simulated cluster, the operator replicas) and the ports they listen on.

The demo promises to leave nothing behind, so the hazards are the ways children outlive it or die unseen:
- Ctrl-C in a terminal signals the whole foreground process group; children would each get SIGINT at once and race
  the demo's own shutdown. They run in their own session, so only the demo sees the signal and stops them in order
  (operators first, so they release the leader lock while the cluster still answers), SIGTERM then SIGKILL after a
  timeout, and waits for each.
- A child that dies (a port taken between the check and its bind, a crash) must end the demo with its reason, so
  each writes to a log file and the error shows that log's last lines.
- A port that is busy: checked before starting, with the same SO_REUSEADDR the aiohttp servers use, so a socket in
  TIME_WAIT does not count as busy but a listener does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nomad_operator.demo_defaults import (
    DEFAULT_OPERATOR_PORT,
    DEFAULT_SIM_PORT,
    LOCALHOST,
    LOG_TAIL_LINES,
    STOP_TIMEOUT_SECONDS,
)


class PortBusy(Exception):
    """A port given explicitly has a listener; the message names the port and the option."""


def port_is_free(port: int, *, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(*, host: str = LOCALHOST, avoid: Sequence[int] = ()) -> int:
    """A port nobody listens on now (the kernel's pick), other than those in `avoid`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


@dataclass(frozen=True, slots=True)
class Endpoints:
    sim_port: int
    operator_ports: tuple[int, ...]

    @property
    def nomad_addr(self) -> str:
        return f"http://{LOCALHOST}:{self.sim_port}"

    def replicas(self) -> list[tuple[str, str]]:
        return [(f"replica-{i}", f"http://{LOCALHOST}:{port}")
                for i, port in enumerate(self.operator_ports, start=1)]  # fmt: skip


def choose_ports(*, sim_port: int | None, operator_port: int | None, replicas: int) -> Endpoints:
    """The defaults when free, else free ports; a port given explicitly must be free (PortBusy otherwise)."""
    taken: list[int] = []

    def pick(requested: int | None, default: int, what: str) -> int:
        if requested is not None and requested != 0:
            if requested in taken or not port_is_free(requested):
                raise PortBusy(f"port {requested} ({what}) is busy; stop what listens there or choose another port")
            port = requested
        elif requested is None and default not in taken and port_is_free(default):
            port = default
        else:
            port = free_port(avoid=taken)
        taken.append(port)
        return port

    sim = pick(sim_port, DEFAULT_SIM_PORT, "--port, the cluster's Nomad API")
    operators = [pick(operator_port, DEFAULT_OPERATOR_PORT, "--operator-port")]
    operators += [pick(0, 0, "a replica") for _ in range(replicas - 1)]
    return Endpoints(sim_port=sim, operator_ports=tuple(operators))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    """One running child and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        return self.process.returncode


async def start_child(name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str]) -> Child:
    with open(log_path, "ab") as log:  # noqa: ASYNC230 - a local file, opened once per child at start
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=dict(env),
            start_new_session=True,
        )  # fmt: skip
    return Child(name=name, process=process, log_path=log_path)


async def stop_child(child: Child, *, grace: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps the child."""
    if child.exit_code is None:
        with contextlib.suppress(ProcessLookupError):
            child.process.terminate()
        try:
            await asyncio.wait_for(child.process.wait(), grace)
            return
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
    await child.process.wait()


async def stop_children(children: Sequence[Child], *, grace: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stops the children in the order given; each gets its own grace period."""
    for child in children:
        await stop_child(child, grace=grace)


def child_environment(*, nomad_addr: str, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The caller's environment without any NOMAD_* setting (a real cluster's token or CA must not leak into the
    demo, nor the demo's writes into a real cluster), pointed at the simulated cluster."""
    env = {key: value for key, value in base.items() if not key.startswith("NOMAD_")}
    env["NOMAD_ADDR"] = nomad_addr
    env["PYTHONUNBUFFERED"] = "1"
    return env
