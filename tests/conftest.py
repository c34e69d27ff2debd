"""Shared test configuration: where the project and the conformance corpus live."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = PROJECT_ROOT.parent / "shared" / "nomad-conformance"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The Nomad conformance corpus beside the checkout; tests that need it skip when it is absent."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance corpus not found at {CONFORMANCE}")
    return CONFORMANCE
