"""Fixtures the end-to-end tests share; the plain helpers they use are in `e2e_processes`.

Why: several tests reconcile the project's real `jobs/` from a local git repository, and a fixture made once keeps
them reconciling the same thing, committed the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_processes import jobs_repository as make_jobs_repository


@pytest.fixture
def jobs_repository(tmp_path: Path, project_root: Path) -> Path:
    """A git repository in tmp_path whose one commit on `main` holds a copy of the project's `jobs/`."""
    return make_jobs_repository(tmp_path / "cluster", project_root)
