"""One job file to one API job: read it safely, evaluate, map, and hash it; no cache, no pool.

This is the conversion every entry point shares: the CLI's `render` and `validate`, the simulator's `/v1/jobs/parse`
(`parse_for_api`), and the GitOps controller's `JobLoader`, which adds caching and a process pool on top. Keeping one
path is what makes the spec hash, the rendered JSON and the parse endpoint agree. The hazards handled here are bad
input: a file too big to be a job file, a file that is not UTF-8, or one that cannot be read is a `JobspecError`
naming the file, never a traceback; and only `NOMAD_VAR_*` entries of the environment reach the evaluator, so
unrelated variables neither leak into a job nor change its result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nomad_operator.jobspec import canonical
from nomad_operator.jobspec.body import Value
from nomad_operator.jobspec.errors import JobspecError, SourcePos
from nomad_operator.jobspec.go_json import canonical_json, sha256_hex
from nomad_operator.jobspec.mapping import map_job

MAX_JOB_FILE_BYTES: Final = 4 * 1024 * 1024  # bigger is not a job file; refuse it with a clear error
ENV_VARIABLE_PREFIX: Final = "NOMAD_VAR_"
API_INPUT_NAME: Final = "input.hcl"  # the name Nomad's /v1/jobs/parse gives the submitted text in its errors
DEFAULT_NAMESPACE: Final = "default"


@dataclass(frozen=True, slots=True)
class LoadedJob:
    """One converted job file: the API job (un-canonicalized, as `nomad job run` sends it) and its identity."""

    job: dict[str, Value]
    job_id: str
    namespace: str
    source_path: str
    spec_hash: str
    source_text: str


def spec_hash(job: dict[str, Value]) -> str:
    """sha256 of the canonical JSON of the canonicalized job: equal for jobs Nomad treats as equal."""
    return sha256_hex(canonical_json(canonical.canonicalize(job)))


def convert_text(
    text: str,
    *,
    filename: str,
    variables: Mapping[str, str] = {},
    var_files: Sequence[tuple[str, str]] = (),
    environ: Mapping[str, str] = {},
    base_dir: Path | None = None,
    root_dir: Path | None = None,
    allow_fs: bool = True,
) -> LoadedJob:
    """Evaluate and map one job file's text; raises JobspecError (JobspecErrors for several)."""
    from nomad_operator.jobspec.evaluate import evaluate_source  # the evaluator is the heavy import: load late

    root = evaluate_source(
        text,
        filename=filename,
        variables=variables,
        var_files=var_files,
        environ=environ,
        base_dir=base_dir,
        root_dir=root_dir,
        allow_fs=allow_fs,
    )
    job = map_job(root)
    namespace = job.get("Namespace")
    return LoadedJob(
        job=job,
        job_id=str(job["ID"]),
        namespace=namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE,
        source_path=filename,
        spec_hash=spec_hash(job),
        source_text=text,
    )


def read_job_text(path: Path) -> tuple[bytes, str]:
    """The bytes and text of a job (or var) file, refusing what is too big or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_JOB_FILE_BYTES:
            raise JobspecError(f"file is {size} bytes, over the limit of {MAX_JOB_FILE_BYTES}", SourcePos(str(path)))
        data = path.read_bytes()
    except OSError as error:
        raise JobspecError(f"cannot read file: {error.strerror or error}", SourcePos(str(path))) from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JobspecError(f"file is not valid UTF-8 (byte {error.start})", SourcePos(str(path))) from None


def load_job(
    path: Path,
    *,
    variables: Mapping[str, str] = {},
    var_files: Sequence[Path] = (),
    environ: Mapping[str, str] = {},
    root_dir: Path | None = None,
    allow_fs: bool = True,
) -> LoadedJob:
    """Load one job file with its variables (`environ` supplies NOMAD_VAR_* values; the CLI passes os.environ)."""
    _, text = read_job_text(path)
    files = [(str(var_file), read_job_text(var_file)[1]) for var_file in var_files]
    return convert_text(
        text,
        filename=str(path),
        variables=variables,
        var_files=files,
        environ=job_environment(environ),
        base_dir=path.parent,
        root_dir=root_dir,
        allow_fs=allow_fs,
    )


def parse_for_api(hcl: str, *, variables: str | None, canonicalize: bool) -> dict[str, Value]:
    """What Nomad's `/v1/jobs/parse` answers: a bare job, no filesystem, no environment; raises JobspecError."""
    if not hcl.strip():
        raise JobspecError("Job spec is empty")
    var_files = [("variables.hcl", variables)] if variables else []
    loaded = convert_text(hcl, filename=API_INPUT_NAME, var_files=var_files, allow_fs=False)
    return canonical.canonicalize(loaded.job) if canonicalize else loaded.job


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Only NOMAD_VAR_* entries can change a job: keep those, so the rest never invalidates the cache."""
    return {key: value for key, value in environ.items() if key.startswith(ENV_VARIABLE_PREFIX)}
