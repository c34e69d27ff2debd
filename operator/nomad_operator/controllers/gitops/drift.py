"""Drift: an owned job whose live spec no longer matches what we applied, seen without asking Nomad each time.

Job events arrive for many reasons (status changes, scaling, our own registers), and asking Nomad for a plan on each
would cost a request per event per job. So after each apply (or after a plan confirmed the job in sync) the live
job's *fingerprint* is recorded: a hash of its spec without server bookkeeping (indexes, status, version, submit
time) and without the counts of groups that carry a scaling block (an autoscaler owns those; they are not drift).
An unchanged JobModifyIndex or fingerprint means in sync, with no request; anything else is "check": the caller
confirms with Nomad's plan diff, which is the authority on whether anything would change. Pure.
"""

from __future__ import annotations

import copy
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from nomad_operator.controllers.gitops.desired_state import JobKey

SERVER_FIELDS = frozenset(
    {
        "Status", "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex", "ModifyIndex",
        "JobModifyIndex", "NomadTokenID", "VersionTag", "JobSummary",
    }
)  # fmt: skip


class DriftVerdict(enum.StrEnum):
    IN_SYNC = "in_sync"
    CHECK = "check"  # unknown or changed: confirm with a plan diff


def spec_fingerprint(live_job: Mapping[str, Any]) -> str:
    """A hash of what the job would do: its spec without bookkeeping fields and without autoscaled counts."""
    view = {key: value for key, value in live_job.items() if key not in SERVER_FIELDS}
    groups = view.get("TaskGroups")
    if isinstance(groups, list):
        view["TaskGroups"] = [_without_scaled_count(group) for group in groups]
    return hashlib.sha256(orjson.dumps(view, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _without_scaled_count(group: Any) -> Any:
    if isinstance(group, Mapping) and group.get("Scaling"):
        group = copy.copy(dict(group))
        group["Count"] = None
    return group


@dataclass(frozen=True, slots=True)
class Baseline:
    spec_hash: str
    job_modify_index: int
    fingerprint: str


class DriftTracker:
    """The last known-good fingerprint of each owned job, per spec hash."""

    def __init__(self) -> None:
        self._baselines: dict[JobKey, Baseline] = {}
        self._expected: dict[JobKey, tuple[str, int]] = {}

    def expect(self, key: JobKey, *, spec_hash: str, job_modify_index: int) -> None:
        """We just registered `spec_hash` at `job_modify_index`: the live job seen at that index is the baseline."""
        self._expected[key] = (spec_hash, job_modify_index)

    def record(self, key: JobKey, live_job: Mapping[str, Any], *, spec_hash: str) -> None:
        modify = live_job.get("JobModifyIndex")
        self._baselines[key] = Baseline(
            spec_hash=spec_hash,
            job_modify_index=modify if isinstance(modify, int) else -1,
            fingerprint=spec_fingerprint(live_job),
        )

    def verdict(self, key: JobKey, live_job: Mapping[str, Any], *, spec_hash: str) -> DriftVerdict:
        expected = self._expected.get(key)
        if expected is not None and expected == (spec_hash, live_job.get("JobModifyIndex")):
            del self._expected[key]
            self.record(key, live_job, spec_hash=spec_hash)
            return DriftVerdict.IN_SYNC
        baseline = self._baselines.get(key)
        if baseline is None or baseline.spec_hash != spec_hash:
            return DriftVerdict.CHECK
        if live_job.get("JobModifyIndex") == baseline.job_modify_index:
            return DriftVerdict.IN_SYNC
        if spec_fingerprint(live_job) == baseline.fingerprint:
            return DriftVerdict.IN_SYNC
        return DriftVerdict.CHECK

    def forget(self, key: JobKey) -> None:
        self._baselines.pop(key, None)
        self._expected.pop(key, None)
