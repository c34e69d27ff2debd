"""Errors of the jobspec layer: every one names the file, the line and the thing at fault.

A job file is user input. Rule 4 of DESIGN.md says bad input gets a clear error and loses nothing, so the converter
never drops a field silently: it raises one of these, and collects all of them where it can, so `validate` lists every
error of a file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourcePos:
    """Where something stands in a job file (1-based line and column; 0 when unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line},{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


class JobspecError(Exception):
    """One problem in one job file, with its position."""

    def __init__(self, message: str, pos: SourcePos | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}" if self.pos else self.message


class JobspecErrors(JobspecError):
    """Several problems found in one pass; `errors` holds each of them in source order."""

    def __init__(self, errors: Iterable[JobspecError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.pos.file, e.pos.line, e.pos.column) if e.pos else ("", 0, 0))
        if not self.errors:
            raise ValueError("JobspecErrors needs at least one error")
        super().__init__("\n".join(str(error) for error in self.errors), self.errors[0].pos)

    def __str__(self) -> str:
        return self.message
