"""Field-by-field differences between two API jobs: ours and the one Nomad's own `/v1/jobs/parse` produced.

Rule 8 of DESIGN.md: never deploy a job we may have mistranslated. The check compares our conversion with Nomad's
and must name every field that differs (a path such as `TaskGroups[0].Tasks[0].Config.image`), not just say
"different", so that a user sees what would have been deployed wrongly and we see which mapping rule has a gap.
Pure data in, pure data out: `validate --against-server` and the GitOps controller both use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from nomad_operator.jobspec.body import Value

ABSENT: Final = "<absent>"
MAX_SHOWN_CHARS: Final = 120


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field whose value differs; `ours`/`theirs` are JSON texts, or ABSENT when the key is missing."""

    path: str
    ours: str
    theirs: str

    def __str__(self) -> str:
        return f"{self.path}: ours {self.ours}, Nomad {self.theirs}"


def field_differences(ours: Value, theirs: Value, *, path: str = "Job") -> list[FieldDifference]:
    """Every leaf where the two JSON values differ, in document order; lists are compared element by element."""
    differences: list[FieldDifference] = []
    _walk(ours, theirs, path, differences)
    return differences


def _walk(ours: Value, theirs: Value, path: str, out: list[FieldDifference]) -> None:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            child = f"{path}.{key}"
            if key not in theirs:
                out.append(FieldDifference(child, _show(ours[key]), ABSENT))
            elif key not in ours:
                out.append(FieldDifference(child, ABSENT, _show(theirs[key])))
            else:
                _walk(ours[key], theirs[key], child, out)
        return
    if isinstance(ours, list) and isinstance(theirs, list):
        for index in range(max(len(ours), len(theirs))):
            child = f"{path}[{index}]"
            if index >= len(theirs):
                out.append(FieldDifference(child, _show(ours[index]), ABSENT))
            elif index >= len(ours):
                out.append(FieldDifference(child, ABSENT, _show(theirs[index])))
            else:
                _walk(ours[index], theirs[index], child, out)
        return
    if type(ours) is type(theirs) and ours == theirs:
        return
    if _is_number(ours) and _is_number(theirs) and ours == theirs:
        return  # 5 and 5.0 are the same JSON number
    out.append(FieldDifference(path, _show(ours), _show(theirs)))


def _is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."
