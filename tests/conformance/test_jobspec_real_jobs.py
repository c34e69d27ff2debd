"""All 32 real-world job files of the corpus convert, or fail for the one precise reason they must.

These files come from public repositories, byte for byte. Some need `-var` values (listed in the corpus README);
one reads files next to it with `file()`; none may fail for a reason of ours. The project's own jobs/ (the cluster
the operator runs) must convert too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nomad_operator.jobspec.errors import JobspecError
from nomad_operator.jobspec.loader import load_job

pytest.importorskip("nomad_operator.jobspec.evaluate", reason="the HCL evaluator is not in the tree yet")

JOB_VARIABLES: dict[str, dict[str, str]] = {
    "nomad-e2e-required-typed-variables": {"X": "x", "Y": "2", "Z": "true"},
    "nomad-e2e-task-schedule-slash-comments": {"start": "30 9 * * MON-FRI", "end": "0 17"},
    "nomad-e2e-disconnect-node-vars": {"nodeID": "node-1"},
    "nomad-e2e-checks-task-restart": {"filename": "healthy.sh"},  # not in the README list, but required
}


def job_names(conformance_dir: Path) -> list[str]:
    return sorted(path.stem for path in (conformance_dir / "jobs").glob("*.nomad"))


def test_there_are_32_jobs(conformance_dir: Path) -> None:
    assert len(job_names(conformance_dir)) == 32


def test_every_real_job_converts(conformance_dir: Path) -> None:
    jobs = conformance_dir / "jobs"
    failures: dict[str, str] = {}
    for name in job_names(conformance_dir):
        try:
            loaded = load_job(jobs / f"{name}.nomad", variables=JOB_VARIABLES.get(name, {}), root_dir=jobs)
        except JobspecError as error:
            failures[name] = str(error)
            continue
        assert loaded.job["TaskGroups"], name
        assert loaded.job_id, name
    assert failures == {}


def test_file_outside_the_tree_is_refused(conformance_dir: Path, tmp_path: Path) -> None:
    """The job that reads files/ with file() may not read outside the repository it lives in."""
    source = conformance_dir / "jobs" / "locals-file-functions-lifecycle.nomad"
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(source, repo / source.name)
    shutil.copytree(conformance_dir / "jobs" / "files", tmp_path / "files")  # beside the repo, not in it
    with pytest.raises(JobspecError) as caught:
        load_job(repo / source.name, root_dir=repo)
    assert "files/" in str(caught.value)


def test_missing_required_variable_is_named(conformance_dir: Path) -> None:
    path = conformance_dir / "jobs" / "nomad-e2e-required-typed-variables.nomad"
    with pytest.raises(JobspecError) as caught:
        load_job(path)
    assert '"X"' in str(caught.value) or " X" in str(caught.value)


def test_the_projects_own_jobs_convert(project_root: Path) -> None:
    jobs = sorted((project_root / "jobs").glob("*.nomad"))
    assert jobs, "the project's jobs/ folder holds the cluster's job files"
    for path in jobs:
        loaded = load_job(path, root_dir=project_root)
        assert loaded.job["ID"] == loaded.job_id
