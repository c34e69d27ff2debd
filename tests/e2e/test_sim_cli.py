"""`nomad-operator sim` as processes: start a simulator, unplug and plug a node from another process, stop it with
SIGTERM; plus the CLI's errors when the simulator is unreachable or the node unknown."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e_processes import cli, cli_argv, free_port, request_json, wait_for

DEADLINE_S = 20.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return cli("sim", *args, timeout=DEADLINE_S)


def _wait_for(check: Callable[[], Any], what: str) -> Any:
    return wait_for(check, what, deadline_s=DEADLINE_S)


@pytest.fixture
def simulator() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    flags = ("--nodes", "3", "--listen", f"127.0.0.1:{port}", "--heartbeat-ttl", "300ms", "--heartbeat-grace", "300ms")
    process = subprocess.Popen(cli_argv("sim", *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    address = f"http://127.0.0.1:{port}"
    try:
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=DEADLINE_S)


def _status(address: str, name: str) -> str:
    return str(next(node["Status"] for node in request_json(address, "/v1/nodes") if node["Name"] == name))


def test_unplug_plug_and_sigterm(simulator: tuple[subprocess.Popen[str], str]) -> None:
    process, address = simulator
    _wait_for(lambda: request_json(address, "/v1/status/leader"), "the simulator to answer")
    _wait_for(lambda: _status(address, "pi2") == "ready", "pi2 ready")
    unplugged = _cli("unplug", "pi2", "--address", address)
    assert unplugged.returncode == 0, unplugged.stderr
    assert "unplugged pi2" in unplugged.stdout
    _wait_for(lambda: _status(address, "pi2") == "down", "pi2 down")
    assert _status(address, "pi1") == "ready"
    plugged = _cli("plug", "pi2", "--address", address)
    assert plugged.returncode == 0, plugged.stderr
    _wait_for(lambda: _status(address, "pi2") == "ready", "pi2 ready again")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, err
    assert f"listening on {address}" in out
    assert "stopped" in out


def test_unknown_node_and_unreachable_simulator(simulator: tuple[subprocess.Popen[str], str]) -> None:
    _, address = simulator
    _wait_for(lambda: request_json(address, "/v1/status/leader"), "the simulator to answer")
    unknown = _cli("unplug", "pi9", "--address", address)
    assert unknown.returncode == 1
    assert "unknown node 'pi9'" in unknown.stderr
    unreachable = _cli("plug", "pi1", "--address", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot reach the simulator" in unreachable.stderr


def test_acl_prints_the_token_and_requires_it() -> None:
    port = free_port()
    process = subprocess.Popen(cli_argv("sim", "--acl", "--listen", f"127.0.0.1:{port}"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        _wait_for(lambda: "listening" in process.stdout.readline(), "the start line")  # type: ignore[union-attr]
        token = process.stdout.readline().strip().rpartition(" ")[2]
        address = f"http://127.0.0.1:{port}"
        denied = _cli("unplug", "pi1", "--address", address)
        assert denied.returncode == 1
        assert "permission denied" in denied.stderr
        allowed = _cli("unplug", "pi1", "--address", address, "--token", token)
        assert allowed.returncode == 0, allowed.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--nodes", "0"], "invalid node count"),
    (["--listen", "nowhere"], "invalid listen address"),
    (["--heartbeat-ttl", "ten"], "invalid duration"),
])
def test_bad_flags(args: list[str], message: str) -> None:
    result = _cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_help() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    assert "unplug" in result.stdout
    assert "--heartbeat-ttl" in result.stdout
