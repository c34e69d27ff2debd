"""The broken-files corpus: each file in broken/ fails with exactly the errors in its .error file, nothing else.

Bad input must get a clear error that names the file, the line and the thing at fault; a second error in the same
file must not hide behind the first. `FILE` in an .error file stands for the job file's path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nomad_operator.jobspec.errors import JobspecError, JobspecErrors
from nomad_operator.jobspec.loader import load_job

pytest.importorskip("nomad_operator.jobspec.evaluate", reason="the HCL evaluator is not in the tree yet")

BROKEN = Path(__file__).parent / "broken"
CASES = sorted(path.stem for path in BROKEN.glob("*.nomad"))


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert all((BROKEN / f"{case}.error").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_broken_file_fails_with_its_exact_errors(case: str) -> None:
    path = BROKEN / f"{case}.nomad"
    expected = (BROKEN / f"{case}.error").read_text().replace("FILE", str(path)).splitlines()
    with pytest.raises(JobspecError) as caught:
        load_job(path, root_dir=BROKEN)
    error = caught.value
    actual = [str(each) for each in (error.errors if isinstance(error, JobspecErrors) else [error])]
    assert actual == expected
