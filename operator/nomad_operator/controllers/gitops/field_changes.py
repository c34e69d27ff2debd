"""Field-level changes between a live job and the job git wants, read from Nomad's own plan diff.

Comparing our JSON with the job Nomad stores gives dozens of false differences (the server fills defaults, nulls
empty lists, adds bookkeeping fields), so the authority on "what would change" is Nomad's plan with `Diff: true`,
flattened here into paths such as `TaskGroups[web].Tasks[web].Config.image`. Two kinds of noise are removed: our own
owner meta (a new revision changes it on every commit) and the `Count` of groups with a scaling block, which an
autoscaler owns (PreserveCounts keeps it on register, so it is not drift and not a change). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nomad_operator.controllers.gitops.defaults import OWNER_META_KEYS

NO_CHANGE = "None"
_OWNER_META_FIELDS = frozenset(f"Meta[{key}]" for key in OWNER_META_KEYS)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed field: `old` is the live value, `new` the value from git ("" when absent)."""

    path: str
    kind: str  # Added, Deleted, Edited
    old: str
    new: str

    def __str__(self) -> str:
        if self.kind == "Added":
            return f"+ {self.path}: {self.new}"
        if self.kind == "Deleted":
            return f"- {self.path}: {self.old}"
        return f"~ {self.path}: {self.old} => {self.new}"


def scaling_groups(job: Mapping[str, Any]) -> frozenset[str]:
    """Names of the task groups that carry a scaling block (their Count belongs to an autoscaler)."""
    names = set()
    for group in job.get("TaskGroups") or []:
        if isinstance(group, Mapping) and group.get("Scaling"):
            names.add(str(group.get("Name")))
    return frozenset(names)


def changes_from_plan_diff(diff: Mapping[str, Any] | None, *, scaling: Iterable[str] = ()) -> list[FieldChange]:
    """Every changed field in a plan's `Diff`, minus owner meta and scaling-group counts."""
    if not isinstance(diff, Mapping) or diff.get("Type") in (None, NO_CHANGE):
        return []
    scaled = frozenset(scaling)
    out: list[FieldChange] = []
    _fields(diff.get("Fields"), "", out, skip=_OWNER_META_FIELDS)
    _objects(diff.get("Objects"), "", out)
    for group in diff.get("TaskGroups") or []:
        if not isinstance(group, Mapping) or group.get("Type") == NO_CHANGE:
            continue
        name = str(group.get("Name"))
        prefix = f"TaskGroups[{name}]."
        if group.get("Type") in ("Added", "Deleted"):
            out.append(FieldChange(prefix.rstrip("."), str(group["Type"]), "", ""))
        skip = frozenset({"Count"}) if name in scaled else frozenset()
        _fields(group.get("Fields"), prefix, out, skip=skip)
        _objects(group.get("Objects"), prefix, out)
        for task in group.get("Tasks") or []:
            if not isinstance(task, Mapping) or task.get("Type") == NO_CHANGE:
                continue
            task_prefix = f"{prefix}Tasks[{task.get('Name')}]."
            if task.get("Type") in ("Added", "Deleted"):
                out.append(FieldChange(task_prefix.rstrip("."), str(task["Type"]), "", ""))
            _fields(task.get("Fields"), task_prefix, out, skip=frozenset())
            _objects(task.get("Objects"), task_prefix, out)
    return out


def _fields(fields: Any, prefix: str, out: list[FieldChange], *, skip: frozenset[str]) -> None:
    for item in fields or []:
        if not isinstance(item, Mapping) or item.get("Type") == NO_CHANGE:
            continue
        name = str(item.get("Name"))
        if name in skip:
            continue
        out.append(FieldChange(prefix + name, str(item.get("Type")), str(item.get("Old") or ""),
                               str(item.get("New") or "")))  # fmt: skip


def _objects(objects: Any, prefix: str, out: list[FieldChange]) -> None:
    for item in objects or []:
        if not isinstance(item, Mapping) or item.get("Type") == NO_CHANGE:
            continue
        inner = f"{prefix}{item.get('Name')}."
        before = len(out)
        _fields(item.get("Fields"), inner, out, skip=frozenset())
        _objects(item.get("Objects"), inner, out)
        if len(out) == before:
            out.append(FieldChange(inner.rstrip("."), str(item.get("Type")), "", ""))


def summarize(changes: Iterable[FieldChange], *, limit: int = 3) -> str:
    """`3 fields: a, b, c` style summary for conditions and plan actions."""
    paths = [change.path for change in changes]
    if not paths:
        return "no field changes"
    shown = ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
    return f"{len(paths)} field(s): {shown}"
