"""Nomad's job diff (structs/diff.go) in the shape `/v1/job/:id/plan` returns it: Job, TaskGroup, Task, Object and Field
diffs, each typed Added, Deleted, Edited or None.

The GitOps operator shows plan diffs to people and decides from them whether anything changed; a diff that reports
bookkeeping fields (Version, indexes, Status) as edits would make every plan look dirty. The hazard handled here is
that noise: server-managed fields are ignored, values are compared as Nomad formats them (strings), lists of objects
are paired by position and task groups and tasks by name, and maps of strings are flattened as `Key[k]`. This is
simplified against Nomad's contextual diff: unchanged fields are left out of edited objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nomad_operator.sim.job_rules import SERVER_FIELDS

ADDED = "Added"
DELETED = "Deleted"
EDITED = "Edited"
NONE = "None"

# The fields SpecChanged ignores are bookkeeping to the diff too; task groups get TaskGroupDiffs of their own.
JOB_IGNORED = frozenset(SERVER_FIELDS) | {"TaskGroups"}
# String maps Nomad lists as `Name[key]` fields; other maps (Config, ...) become an ObjectDiff of their own.
FLATTENED_MAPS = frozenset({"Meta", "Env"})
GROUP_IGNORED = frozenset({"Name", "Tasks"})
TASK_IGNORED = frozenset({"Name"})

# DesiredUpdates counts -> TaskGroupDiff.Updates keys (structs/diff.go and scheduler annotate.go).
UPDATE_NAMES = {
    "Ignore": "ignore",
    "Place": "create",
    "Migrate": "migrate",
    "Stop": "destroy",
    "InPlaceUpdate": "in-place update",
    "DestructiveUpdate": "create/destroy update",
    "Canary": "canary",
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_primitive(item) for item in value.values())


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 1 else name


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _kind(old: Any, new: Any) -> str:
    if _empty(old) and not _empty(new):
        return ADDED
    if _empty(new) and not _empty(old):
        return DELETED
    return EDITED if old != new else NONE


def _field(name: str, old: Any, new: Any) -> dict[str, Any]:
    kind = ADDED if old is None else DELETED if new is None else EDITED
    return {"Annotations": None, "Name": name, "New": _text(new), "Old": _text(old), "Type": kind}


def field_diffs(old: Mapping[str, Any], new: Mapping[str, Any], *, ignored: frozenset[str]) -> list[dict[str, Any]]:
    """Changed primitive fields, and string maps flattened as `Name[key]`."""
    diffs: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in ignored:
            continue
        before, after = old.get(key), new.get(key)
        if _is_primitive(before) and _is_primitive(after):
            if before != after and _text(before) != _text(after):
                diffs.append(_field(key, before, after))
        elif key in FLATTENED_MAPS and _is_string_map(before or {}) and _is_string_map(after or {}):
            before_map, after_map = before or {}, after or {}
            for item in sorted(set(before_map) | set(after_map)):
                if before_map.get(item) != after_map.get(item):
                    diffs.append(_field(f"{key}[{item}]", before_map.get(item), after_map.get(item)))
    return diffs


def object_diffs(old: Mapping[str, Any], new: Mapping[str, Any], *, ignored: frozenset[str]) -> list[dict[str, Any]]:
    """Nested objects and lists, each as an ObjectDiff."""
    diffs: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in ignored:
            continue
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, list) or isinstance(after, list):
            diffs.extend(_list_diffs(key, before or [], after or []))
        elif (isinstance(before, dict) or isinstance(after, dict)) and key not in FLATTENED_MAPS:
            diffs.append(_object_diff(key, before or {}, after or {}))
    return diffs


def _object_diff(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Fields": field_diffs(old, new, ignored=frozenset()) or None,
        "Name": name,
        "Objects": object_diffs(old, new, ignored=frozenset()) or None,
        "Type": _kind(old, new),
    }


def _list_diffs(name: str, old: list[Any], new: list[Any]) -> list[dict[str, Any]]:
    if all(_is_primitive(item) for item in old + new):
        fields = [
            {"Annotations": None, "Name": name, "New": "", "Old": _text(item), "Type": DELETED}
            for item in old
            if item not in new
        ] + [
            {"Annotations": None, "Name": name, "New": _text(item), "Old": "", "Type": ADDED}
            for item in new
            if item not in old
        ]
        if not fields:
            return []
        return [{"Fields": fields, "Name": name, "Objects": None, "Type": _kind(old, new)}]
    diffs = []
    for position in range(max(len(old), len(new))):
        before = old[position] if position < len(old) else {}
        after = new[position] if position < len(new) else {}
        if before != after:
            diffs.append(_object_diff(_singular(name), before or {}, after or {}))
    return diffs


def _named_diffs(
    old: list[dict[str, Any]], new: list[dict[str, Any]], *, ignored: frozenset[str]
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    before = {item.get("Name", ""): item for item in old}
    after = {item.get("Name", ""): item for item in new}
    result = []
    for name in sorted(set(before) | set(after)):
        old_item, new_item = before.get(name), after.get(name)
        if old_item is None or new_item is None:
            kind = ADDED if old_item is None else DELETED
        else:
            # A change inside a group's tasks edits the group, though the tasks are diffed on their own.
            compared = set(old_item) | set(new_item)
            changed = any(old_item.get(key) != new_item.get(key) for key in compared if key not in ignored - {"Tasks"})
            kind = EDITED if changed else NONE
        result.append((name, kind, old_item or {}, new_item or {}))
    return result


def _task_diffs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    diffs = []
    for name, kind, before, after in _named_diffs(old, new, ignored=TASK_IGNORED):
        diffs.append(
            {
                "Annotations": None,
                "Fields": field_diffs(before, after, ignored=TASK_IGNORED) or None,
                "Name": name,
                "Objects": object_diffs(before, after, ignored=TASK_IGNORED) or None,
                "Type": kind,
            }
        )
    return diffs


def job_diff(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    updates: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The JobDiff between the stored job (None when new) and the submitted one; `updates` are DesiredTGUpdates."""
    before: Mapping[str, Any] = old or {}
    groups = []
    for name, kind, old_group, new_group in _named_diffs(
        list(before.get("TaskGroups") or []), list(new.get("TaskGroups") or []), ignored=GROUP_IGNORED
    ):
        counts = (updates or {}).get(name, {})
        group_updates = {UPDATE_NAMES[key]: value for key, value in counts.items() if key in UPDATE_NAMES and value}
        groups.append(
            {
                "Fields": field_diffs(old_group, new_group, ignored=GROUP_IGNORED) or None,
                "Name": name,
                "Objects": object_diffs(old_group, new_group, ignored=GROUP_IGNORED) or None,
                "Tasks": _task_diffs(list(old_group.get("Tasks") or []), list(new_group.get("Tasks") or [])) or None,
                "Type": kind,
                "Updates": group_updates or None,
            }
        )
    fields = field_diffs(before, new, ignored=JOB_IGNORED)
    objects = object_diffs(before, new, ignored=JOB_IGNORED)
    if old is None:
        kind = ADDED
    elif fields or objects or any(group["Type"] != NONE for group in groups):
        kind = EDITED
    else:
        kind = NONE
    return {
        "Fields": fields or None,
        "ID": new.get("ID", ""),
        "Objects": objects or None,
        "TaskGroups": groups or None,
        "Type": kind,
    }
