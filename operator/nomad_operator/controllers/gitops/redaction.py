"""Keep secrets out of diffs, status and logs (DESIGN.md rule 6).

A plan diff shows old and new values, and job files carry secrets in plain sight: `env { DB_PASSWORD = ... }`, a
template that renders `API_TOKEN=...`, a variable declared `sensitive`. Anything whose key looks secret is replaced
by `<redacted>` before a change is printed or stored; template text keeps its lines but loses the values of secret
keys; and known secret values (from sensitive variables, tokens) are masked wherever they appear. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from nomad_operator.controllers.gitops.defaults import REDACTED
from nomad_operator.controllers.gitops.field_changes import FieldChange

SECRET_KEY = re.compile(
    r"(?i)(passw(or)?d|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth(?!or)|cookie|"
    r"session[_-]?key|signing[_-]?key|\bpwd\b|_pwd|dsn)"
)
_KEYED = re.compile(r"\[([^\]]*)\]$|\.([^.\[\]]+)$")
_TEMPLATE_LINE = re.compile(r"(?m)^(\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[:=]\s*)(.+)$")
TEMPLATE_FIELDS = ("EmbeddedTmpl", "Data")
MIN_SECRET_VALUE_CHARS = 4  # shorter values would mask half the diff


def key_looks_secret(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


def _last_key(path: str) -> str:
    match = _KEYED.search(path)
    if match is None:
        return path
    return match.group(1) if match.group(1) is not None else match.group(2)


def redact_template(text: str) -> str:
    """Template text with the values of secret-looking keys replaced."""

    def mask(match: re.Match[str]) -> str:
        return match.group(1) + REDACTED if key_looks_secret(match.group(2)) else match.group(0)

    return _TEMPLATE_LINE.sub(mask, text)


class Redactor:
    """Masks secrets in field changes and free text; `secret_values` are masked wherever they occur."""

    def __init__(self, *, secret_values: Iterable[str] = ()) -> None:
        self._values = sorted({v for v in secret_values if len(v) >= MIN_SECRET_VALUE_CHARS}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        return text

    def change(self, change: FieldChange) -> FieldChange:
        key = _last_key(change.path)
        if key_looks_secret(key):
            return replace(change, old=REDACTED if change.old else "", new=REDACTED if change.new else "")
        old, new = change.old, change.new
        if key in TEMPLATE_FIELDS:
            old, new = redact_template(old), redact_template(new)
        return replace(change, old=self.text(old), new=self.text(new))

    def changes(self, changes: Iterable[FieldChange]) -> list[FieldChange]:
        return [self.change(change) for change in changes]
