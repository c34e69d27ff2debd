"""Owner meta: the marks on a Nomad job that say which source put it there, from which revision, file and spec.

Rule 4 of DESIGN.md says a job is pruned only when it carries *this* source's owner meta, so the marks are the only
thing that separates "ours, left git, may go" from "someone else's, never touch". The hazard is a spec hash that moves
with the marks themselves: the revision changes on every commit, so the hash is computed on the job *without* our
meta (jobspec's `spec_hash` of the file's job), and `strip_owner_meta` gives that view back from a live job. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nomad_operator.controllers.gitops.defaults import (
    META_PATH,
    META_REVISION,
    META_SOURCE,
    META_SPEC_HASH,
    OWNER_META_KEYS,
)


@dataclass(frozen=True, slots=True)
class OwnerMark:
    """What a job's owner meta says: the source (`namespace/name`), revision, file path and spec hash."""

    source: str
    revision: str
    path: str
    spec_hash: str


def source_id(namespace: str, name: str) -> str:
    """How a source names itself in owner meta: `namespace/name`."""
    return f"{namespace}/{name}"


def with_owner_meta(job: Mapping[str, Any], mark: OwnerMark) -> dict[str, Any]:
    """A copy of `job` whose Meta carries `mark` (user meta kept; our keys overwritten).

    Only the top level and Meta are copied: every revision marks every job of a source again (a thousand jobs per
    push), and a deep copy of each cost more than the rest of a one-file change. Jobs are never mutated downstream.
    """
    marked = dict(job)
    meta = dict(marked.get("Meta") or {})
    meta.update({META_SOURCE: mark.source, META_REVISION: mark.revision, META_PATH: mark.path,
                 META_SPEC_HASH: mark.spec_hash})  # fmt: skip
    marked["Meta"] = meta
    return marked


def owner_of(job: Mapping[str, Any]) -> OwnerMark | None:
    """The owner mark of a live job, or None when it has no (complete) mark: then no source owns it."""
    meta = job.get("Meta")
    if not isinstance(meta, Mapping):
        return None
    values = [meta.get(key) for key in OWNER_META_KEYS]
    if not all(isinstance(value, str) and value for value in values):
        return None
    source, revision, path, spec = (str(value) for value in values)
    return OwnerMark(source=source, revision=revision, path=path, spec_hash=spec)


def strip_owner_meta(job: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `job` without our meta keys (Meta becomes None when nothing else was in it, as in the file)."""
    stripped = copy.deepcopy(dict(job))
    meta = stripped.get("Meta")
    if isinstance(meta, Mapping):
        rest = {key: value for key, value in meta.items() if key not in OWNER_META_KEYS}
        stripped["Meta"] = rest or None
    return stripped
