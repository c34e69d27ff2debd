"""The simulator stores a registered job exactly as it did when this was recorded: the cluster's own job files and a
few sparse jobs, registered over HTTP and read back, against golden files in `readback/`.

A job read back from Nomad is never the job that was sent (api and server defaults are filled in), and the GitOps
controller compares the two, so any drift in what the simulator fills in would show as spurious diffs or hide real
ones. The golden files pin the read-back form; a deliberate change regenerates them with
`NOMAD_OPERATOR_UPDATE_GOLDEN=1 pytest tests/integration/contract/test_contract_sim_readback.py` and shows in review
as a diff of JSON. Fields that change from run to run (indexes, submit time, status) are left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from contract_target import Target

from nomad_operator.jobspec import canonicalize, load_job
from nomad_operator.nomad import NomadClient

GOLDEN_DIR = Path(__file__).parent / "readback"
UPDATE = os.environ.get("NOMAD_OPERATOR_UPDATE_GOLDEN") == "1"
# Set by the server at each register or by later status updates: different on every run.
VOLATILE_FIELDS = (
    "CreateIndex",
    "JobModifyIndex",
    "ModifyIndex",
    "Stable",
    "Status",
    "StatusDescription",
    "SubmitTime",
)

SPARSE_JOBS: dict[str, dict[str, Any]] = {
    "sparse-service": {
        "ID": "sparse-service",
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "busybox"}}]}],
    },
    "sparse-batch": {
        "ID": "sparse-batch",
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "exec"}]}],
    },
    "sparse-system-with-update": {
        "ID": "sparse-system-with-update",
        "Type": "system",
        "Update": {"MaxParallel": 2},
        "TaskGroups": [
            {
                "Name": "g",
                "Services": [{"Name": "s", "Checks": [{"Type": "tcp", "Interval": 10**10, "Timeout": 10**9}]}],
                "Tasks": [{"Name": "t", "Driver": "raw_exec", "Resources": {"Cores": 1}}],
            }
        ],
    },
}


def _project_jobs(project_root: Path) -> dict[str, dict[str, Any]]:
    jobs_dir = project_root / "jobs"
    return {path.stem: load_job(path, root_dir=jobs_dir).job for path in sorted(jobs_dir.glob("*.nomad"))}


def _stable(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if key not in VOLATILE_FIELDS}


async def _read_back(nomad: NomadClient, job: dict[str, Any]) -> dict[str, Any]:
    await nomad.register_job(job)
    read: dict[str, Any] = (await nomad.read_job(job["ID"])).value
    return _stable(read)


def _check(name: str, actual: dict[str, Any]) -> None:
    golden = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden.name}: record it with NOMAD_OPERATOR_UPDATE_GOLDEN=1"
    expected = json.loads(golden.read_text(encoding="utf-8"))
    assert actual == expected, f"{name} reads back differently from {golden.name}"


async def test_project_jobs_read_back_as_recorded(target: Target, nomad: NomadClient, project_root: Path) -> None:
    target.require_simulator("the golden files record the simulator's read-back form")
    jobs = _project_jobs(project_root)
    assert jobs, "the project has no job files"
    for name, job in jobs.items():
        _check(f"project-{name}", await _read_back(nomad, job))


async def test_canonical_and_sent_forms_read_back_alike(target: Target, nomad: NomadClient, project_root: Path) -> None:
    """Nomad canonicalizes what it receives, so sending a job already canonicalized changes nothing stored."""
    target.require_simulator("compares two registrations of the same job on a fresh cluster")
    for name, job in _project_jobs(project_root).items():
        as_sent = await _read_back(nomad, job)
        await nomad.deregister_job(job["ID"], purge=True)
        pre_canonicalized = await _read_back(nomad, canonicalize(job))
        assert pre_canonicalized == as_sent, name


@pytest.mark.parametrize("name", sorted(SPARSE_JOBS))
async def test_sparse_jobs_read_back_as_recorded(target: Target, nomad: NomadClient, name: str) -> None:
    target.require_simulator("the golden files record the simulator's read-back form")
    _check(name, await _read_back(nomad, SPARSE_JOBS[name]))
