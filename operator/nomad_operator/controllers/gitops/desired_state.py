"""The desired state of one revision: which jobs the source wants, each marked with its owner meta, and which files
failed.

Everything downstream trusts this value, so it holds the checks that keep a bad revision from doing damage: a file
that fails to convert is an error for that file only (the other jobs still sync), two files that define the same job
ID are an error for both (applying either would flip-flop between them on every sync), a job outside the source's
allowed namespaces is refused, and `complete` is true only when no file failed, which is what rule 4 asks before
anything may be pruned. Pure: converted files in, a value out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nomad_operator.controllers.gitops.defaults import DEFAULT_WAVE, META_WAVE
from nomad_operator.controllers.gitops.owner_meta import OwnerMark, with_owner_meta
from nomad_operator.jobspec import JobspecError, LoadedJob

JobKey = tuple[str, str]
"""(namespace, job ID)."""


class NamespaceCheck(Protocol):
    """Says whether the source may write to a namespace."""

    def __call__(self, namespace: str, /) -> bool: ...


@dataclass(frozen=True, slots=True)
class DesiredJob:
    """One job of the revision: the file's job, its identity, and the job to register (with our owner meta)."""

    key: JobKey
    path: str
    spec_hash: str
    wave: int
    job: Mapping[str, Any]  # the converted job, without our meta: what the spec hash covers
    marked_job: Mapping[str, Any]  # the job with owner meta: what is registered
    source_text: str

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def job_id(self) -> str:
        return self.key[1]


@dataclass(frozen=True, slots=True)
class DesiredState:
    """The jobs of one revision by (namespace, ID), and the errors of the files that failed, by path."""

    source: str
    revision: str
    jobs: Mapping[JobKey, DesiredJob]
    errors: Mapping[str, str] = field(default_factory=dict)
    paths: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every selected file converted: the only state in which pruning may be considered."""
        return not self.errors


def wave_of(job: Mapping[str, Any]) -> int:
    """The job's `nomad-operator.wave` meta as an integer (DEFAULT_WAVE when unset); ValueError when not a number."""
    meta = job.get("Meta")
    raw = meta.get(META_WAVE) if isinstance(meta, Mapping) else None
    if raw is None or raw == "":
        return DEFAULT_WAVE
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"meta {META_WAVE} must be an integer, got {raw!r}") from None


def build_desired_state(
    *,
    source: str,
    revision: str,
    files: Iterable[tuple[str, LoadedJob | JobspecError]],
    allowed_namespace: NamespaceCheck,
) -> DesiredState:
    """Turn the converted files of a revision (repository-relative path, job or error) into a DesiredState."""
    errors: dict[str, str] = {}
    candidates: dict[JobKey, list[tuple[str, LoadedJob, int]]] = {}
    paths: list[str] = []
    for path, result in files:
        paths.append(path)
        if isinstance(result, JobspecError):
            errors[path] = str(result)
            continue
        key = (result.namespace, result.job_id)
        if not allowed_namespace(result.namespace):
            errors[path] = (
                f"job {result.job_id!r} is in namespace {result.namespace!r}, which this source may not write to"
            )
            continue
        try:
            wave = wave_of(result.job)
        except ValueError as exc:
            errors[path] = f"job {result.job_id!r}: {exc}"
            continue
        candidates.setdefault(key, []).append((path, result, wave))
    jobs: dict[JobKey, DesiredJob] = {}
    for key, found in candidates.items():
        if len(found) > 1:
            where = ", ".join(path for path, _, _ in found)
            for path, _, _ in found:
                errors[path] = f"job {key[1]!r} (namespace {key[0]!r}) is defined in several files: {where}"
            continue
        path, loaded, wave = found[0]
        mark = OwnerMark(source=source, revision=revision, path=path, spec_hash=loaded.spec_hash)
        jobs[key] = DesiredJob(
            key=key, path=path, spec_hash=loaded.spec_hash, wave=wave, job=loaded.job,
            marked_job=with_owner_meta(loaded.job, mark), source_text=loaded.source_text,
        )  # fmt: skip
    return DesiredState(
        source=source, revision=revision, jobs=dict(sorted(jobs.items())), errors=dict(sorted(errors.items())),
        paths=tuple(paths),
    )  # fmt: skip
