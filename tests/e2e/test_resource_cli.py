"""`nomad-operator apply | get | delete` as processes against a simulator process: outputs, errors, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_processes import cli, simulator_process

DEADLINE_S = 30.0
SOURCES = """
apiVersion: nomad-operator.io/v1alpha1
kind: GitSource
metadata:
  name: default
spec:
  url: https://git.example.org/cluster.git
  ref: main
---
apiVersion: nomad-operator.io/v1alpha1
kind: GitSource
metadata:
  name: apps
  namespace: team-a
spec:
  url: git@git.example.org:team-a/apps.git
  suspend: true
"""
BROKEN = """
apiVersion: nomad-operator.io/v1alpha1
kind: GitSource
metadata: {name: fine}
spec: {url: "https://git.example.org/fine.git"}
---
apiVersion: nomad-operator.io/v1alpha1
kind: GitSource
metadata: {name: bad}
spec: {url: "ftp://nope", prune: "yes"}
---
apiVersion: example.org/v1
kind: Gizmo
metadata: {name: g}
spec: {}
"""


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with simulator_process("--nodes", "1") as address:
        yield address


@pytest.fixture
def crds(tmp_path: Path, project_root: Path) -> Path:
    folder = tmp_path / "crds"
    folder.mkdir()
    shutil.copy(project_root / "crds" / "gitsource.yaml", folder)
    return folder


def run(address: str, crds: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {"NOMAD_ADDR": address, "NOMAD_OPERATOR_CRDS": str(crds)}
    return cli(*args, env=environment, unset=["NOMAD_TOKEN"], stdin=stdin, timeout=DEADLINE_S)


def test_apply_get_and_delete_round_trip(simulator: str, crds: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "sources.yaml"
    manifest.write_text(SOURCES)
    applied = run(simulator, crds, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == ["gitsource/default created", "gitsource/apps (namespace team-a) created"]
    again = run(simulator, crds, "apply", "-f", str(manifest))
    assert again.stdout.splitlines() == ["gitsource/default unchanged", "gitsource/apps (namespace team-a) unchanged"]
    changed = run(simulator, crds, "apply", "-f", "-", stdin=SOURCES.replace("ref: main", "ref: v2"))
    assert changed.stdout.splitlines()[0] == "gitsource/default configured"

    table = run(simulator, crds, "get", "gitsources", "-A")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["NAME", "NAMESPACE", "URL", "REF", "REVISION", "SUSPENDED"]
    assert rows[1:] == [
        ["default", "default", "https://git.example.org/cluster.git", "v2"],
        ["apps", "team-a", "git@git.example.org:team-a/apps.git", "true"],
    ]
    one = run(simulator, crds, "get", "gs", "default", "-o", "json")
    document = json.loads(one.stdout)
    assert document["spec"]["ref"] == "v2"
    assert document["metadata"]["generation"] == 2
    listed = yaml.safe_load(run(simulator, crds, "get", "GitSource", "-n", "team-a", "-o", "yaml").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["apps"]

    deleted = run(simulator, crds, "delete", "gitsource", "apps", "-n", "team-a")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "gitsource/apps deleted")
    missing = run(simulator, crds, "get", "gitsource", "apps", "-n", "team-a")
    assert missing.returncode == 1
    assert "GitSource team-a/apps not found" in missing.stderr
    empty = run(simulator, crds, "get", "gitsource", "-n", "team-a")
    assert (empty.returncode, empty.stdout, empty.stderr.strip()) == (0, "", "No gitsources found in namespace team-a.")
    gone = run(simulator, crds, "delete", "gitsource", "apps", "-n", "team-a")
    assert gone.returncode == 1
    assert "not found" in gone.stderr


def test_a_file_with_bad_documents_writes_nothing_and_lists_every_problem(
    simulator: str, crds: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(BROKEN)
    result = run(simulator, crds, "apply", "-f", str(manifest))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "nothing was applied" in result.stderr
    assert "(document 2)" in result.stderr
    assert "spec.prune" in result.stderr
    assert "spec.url" in result.stderr
    assert "(document 3): unknown kind 'Gizmo'" in result.stderr
    fine = run(simulator, crds, "get", "gitsource", "fine")
    assert fine.returncode == 1  # the valid first document was not written either


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("get", "gizmos"), 1, "unknown kind 'gizmos'; known kinds: GitSource (gitsources/gs/gitsrc)"),
        (("get", "gitsource", "-o", "xml"), 2, "invalid choice: 'xml'"),
        (("apply", "-f", "/nonexistent/file.yaml"), 2, "cannot read /nonexistent/file.yaml"),
        (("delete", "gitsource"), 2, "the following arguments are required: NAME"),
    ],
)
def test_usage_errors_have_clear_messages_and_exit_codes(
    simulator: str, crds: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(simulator, crds, *args)
    assert result.returncode == code
    assert message in result.stderr


def test_bad_yaml_broken_kinds_and_an_unreachable_nomad(simulator: str, crds: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    result = run(simulator, crds, "apply", "-f", str(bad))
    assert result.returncode == 2
    assert "is not valid YAML" in result.stderr
    (crds / "broken.yaml").write_text("kind: lower\n")
    broken = run(simulator, crds, "get", "gitsources")
    assert broken.returncode == 2
    assert "cannot load the kinds" in broken.stderr
    assert "broken.yaml" in broken.stderr
    (crds / "broken.yaml").unlink()
    unreachable = run("http://127.0.0.1:1", crds, "get", "gitsources")
    assert unreachable.returncode == 3
    assert "cannot reach Nomad at http://127.0.0.1:1" in unreachable.stderr
