"""The provisioning in `ansible/`, run for real: lint, syntax, rendered files per host, systemd units, a check-mode run.

Why: a playbook is only known to work once ansible has run it. These tests use ansible's own templating on the example
inventory (so each node's `nomad.hcl` is exactly what that node would get), verify the systemd units with
`systemd-analyze verify` (which exits 0 on a bad unit: any stderr is a failure), and run the whole play in check mode
against this machine, including the bad settings it must refuse with a clear message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hcl2
import pytest

ANSIBLE_DIR = Path(__file__).resolve().parents[3] / "ansible"
BIN_DIR = Path(sys.executable).parent
EXAMPLE_HOSTS = {"pi1": "192.0.2.11", "pi2": "192.0.2.12", "pi3": "192.0.2.13"}
EXAMPLE_FABIO_IP = "198.51.100.1"
COMMAND_TIMEOUT = 300
# Bad-input runs start at the check they exercise: the tasks before it were run by the full check-mode test.
FABIO_CHECK = "fabio : Check fabio's address"
OPERATOR_CHECK = "operator : Check the operator's settings"


def tool(name: str) -> str:
    """A tool from this venv (ansible is installed there), else from PATH; skip when it is missing."""
    path = BIN_DIR / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def run(argv: Sequence[str], *, cwd: Path = ANSIBLE_DIR) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"}
    environment.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        list(argv), cwd=cwd, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def first_block(document: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = document[name]
    assert len(blocks) == 1
    block: dict[str, Any] = blocks[0]
    return block


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every host's files, rendered by ansible from the example inventory, with a real executable as nomad."""
    out = tmp_path_factory.mktemp("rendered")
    stub = out / "bin" / "nomad"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    result = run([tool("ansible-playbook"), "render.yml", "-e", f"render_dir={out}", "-e", f"nomad_binary={stub}"])
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture
def localhost_inventory(tmp_path: Path) -> Path:
    """This machine as a one-node cluster, for check-mode runs."""
    if os.geteuid() != 0:
        pytest.skip("the check-mode run reads root-only state; run as root (CI does)")
    inventory = tmp_path / "inventory"
    inventory.write_text(
        "[servers]\n"
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} ansible_become=false"
        " nomad_address=127.0.0.1\n\n"
        "[clients]\nlocalhost\n\n"
        "[all:vars]\n"
        f"fabio_ip={EXAMPLE_FABIO_IP}\n"
        "operator_repo_url=https://git.example.com/you/nomad-operator.git\n"
        "operator_webhook_secret=0123456789abcdef0123\n"
    )
    return inventory


def check_mode(inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([tool("ansible-playbook"), "-i", str(inventory), "setup.yml", "--check", "--diff", *extra])


def test_ansible_lint_passes_the_production_profile() -> None:
    result = run([tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor", "."])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("playbook", ["setup.yml", "render.yml"])
def test_playbooks_pass_the_syntax_check(playbook: str) -> None:
    result = run([tool("ansible-playbook"), "--syntax-check", playbook])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("host", sorted(EXAMPLE_HOSTS))
def test_each_node_gets_a_nomad_hcl_of_its_own(rendered: Path, host: str) -> None:
    config = hcl2.loads((rendered / host / "nomad.hcl").read_text())
    address = EXAMPLE_HOSTS[host]
    assert unquote(config["name"]) == host
    assert unquote(config["bind_addr"]) == "0.0.0.0"
    advertise = first_block(config, "advertise")
    assert {key: unquote(advertise[key]) for key in ("http", "rpc", "serf")} == dict.fromkeys(
        ("http", "rpc", "serf"), address
    )
    server = first_block(config, "server")
    assert server["enabled"] is True
    assert server["bootstrap_expect"] == 3
    others = sorted(f"{ip}:4648" for name, ip in EXAMPLE_HOSTS.items() if name != host)
    assert sorted(unquote(peer) for peer in first_block(server, "server_join")["retry_join"]) == others
    client = first_block(config, "client")
    assert client["enabled"] is True
    every_server = sorted(f"{ip}:4647" for ip in EXAMPLE_HOSTS.values())
    assert sorted(unquote(peer) for peer in first_block(client, "server_join")["retry_join"]) == every_server
    volumes = {unquote(label): body for volume in client["host_volume"] for label, body in volume.items()}
    assert unquote(volumes["consul"]["path"]) == "/opt/consul/data"
    assert volumes["consul"]["read_only"] is False
    assert unquote(first_block(config, "consul")["address"]) == f"{address}:8500"
    assert "acl" not in config, "ACLs are off unless nomad_acl_enabled"
    assert "tls" not in config, "TLS is off unless nomad_tls_enabled"


def test_acl_and_tls_blocks_appear_when_enabled(tmp_path: Path) -> None:
    result = run(
        [
            tool("ansible-playbook"),
            "render.yml",
            "--limit",
            "pi1",
            "-e",
            f"render_dir={tmp_path}",
            "-e",
            "nomad_acl_enabled=true",
            "-e",
            "nomad_tls_enabled=true",
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = hcl2.loads((tmp_path / "pi1" / "nomad.hcl").read_text())
    assert first_block(config, "acl")["enabled"] is True
    tls = first_block(config, "tls")
    assert tls["http"] is True
    assert tls["rpc"] is True
    assert tls["verify_server_hostname"] is True
    assert unquote(tls["ca_file"]) == "/etc/nomad.d/tls/ca.pem"


def systemd_verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    return run([analyze, "verify", str(unit)], cwd=unit.parent)


@pytest.mark.parametrize("unit", ["nomad.service", "fabio-address.service"])
def test_systemd_units_verify_with_nothing_on_stderr(rendered: Path, unit: str) -> None:
    result = systemd_verify(rendered / "pi1" / unit)
    assert result.returncode == 0
    assert result.stderr == ""


def test_systemd_verify_reports_a_broken_unit_on_stderr_only(rendered: Path, tmp_path: Path) -> None:
    """The control for the test above: a misspelt key and a bad value still exit 0, and show up on stderr."""
    broken = tmp_path / "nomad.service"
    text = (rendered / "pi1" / "nomad.service").read_text()
    broken.write_text(text.replace("RestartSec=", "RestartSecc=").replace("Restart=always", "Restart=sometimes"))
    result = systemd_verify(broken)
    assert "RestartSecc" in result.stderr
    assert "sometimes" in result.stderr


def test_nomad_unit_restarts_forever_and_keeps_tasks_running(rendered: Path) -> None:
    unit = (rendered / "pi1" / "nomad.service").read_text().splitlines()
    for setting in ("Restart=always", "StartLimitIntervalSec=0", "KillMode=process", "LimitNOFILE=65536"):
        assert setting in unit


def test_fabio_address_is_added_to_loopback_at_boot(rendered: Path) -> None:
    unit = (rendered / "pi2" / "fabio-address.service").read_text()
    assert f"address replace {EXAMPLE_FABIO_IP}/32 dev lo" in unit
    assert "WantedBy=multi-user.target" in unit


def test_check_mode_run_against_this_machine_finishes_without_failures(localhost_inventory: Path) -> None:
    config = Path("/etc/nomad.d/nomad.hcl")
    existed = config.exists()
    result = check_mode(localhost_inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout
    assert "Write nomad.hcl" in result.stdout
    assert config.exists() == existed, "check mode wrote a file"


def test_check_mode_run_with_the_release_archive(localhost_inventory: Path) -> None:
    checksum = "0" * 64
    result = check_mode(
        localhost_inventory,
        "-e",
        "nomad_install_method=archive",
        "-e",
        f'{{"nomad_archive_sha256": {{"amd64": "{checksum}", "arm64": "{checksum}"}}}}',
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Create the download cache" in result.stdout
    assert "Add HashiCorp's apt repository" not in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-e", "nomad_install_method=archive"], "archive needs the 64-hex-digit sha256"),
        (["-e", "nomad_tls_enabled=true"], "nomad_tls_ca_file"),
        (["-e", "fabio_ip=198.51.100.300", "--start-at-task", FABIO_CHECK], "fabio_ip must be an IPv4 address"),
        (["-e", "fabio_ip=not-an-address", "--start-at-task", FABIO_CHECK], "fabio_ip must be an IPv4 address"),
        (["-e", "operator_repo_url=", "--start-at-task", OPERATOR_CHECK], "The operator needs operator_repo_url"),
        (
            ["-e", "operator_webhook_secret=short", "--start-at-task", OPERATOR_CHECK],
            "operator_webhook_secret of at least 16 characters",
        ),
    ],
)
def test_bad_settings_stop_the_run_with_a_clear_message(
    localhost_inventory: Path, extra: list[str], message: str
) -> None:
    result = check_mode(localhost_inventory, *extra)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
