"""The project's own `jobs/` pass `nomad-operator validate` and render to the job the operator applies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nomad_operator.jobspec import load_job


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nomad_operator", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def job_files(root: Path) -> list[Path]:
    files = sorted((root / "jobs").glob("*.nomad"))
    assert {path.stem for path in files} >= {"consul", "fabio", "whoami", "nomad-operator"}
    return files


def test_validate_accepts_every_job_file(project_root: Path) -> None:
    done = cli("validate", "jobs/", cwd=project_root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(job_files(project_root))} job files checked" in done.stdout


@pytest.mark.parametrize("name", ["consul", "fabio", "whoami", "nomad-operator"])
def test_render_matches_what_the_operator_loads(project_root: Path, name: str) -> None:
    path = project_root / "jobs" / f"{name}.nomad"
    done = cli("render", str(path), cwd=project_root)
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)["Job"]
    loaded = load_job(path, root_dir=project_root)
    assert rendered == loaded.job
    assert rendered["ID"] == name
    groups = rendered["TaskGroups"]
    assert groups
    assert all(group["Tasks"] for group in groups)
