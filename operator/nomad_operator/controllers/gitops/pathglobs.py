"""Glob patterns over repository paths, with `**` matching zero or more directories.

`fnmatch` lets `*` cross `/` and `pathlib.PurePath.match` anchors at the wrong end, so neither says what a GitSource's
`paths` mean: `jobs/**/*.nomad` must match `jobs/a.nomad` and `jobs/x/y/a.nomad` but not `jobs.nomad` or
`other/jobs/a.nomad`. Patterns are anchored at the repository root, `*` and `?` stay inside one path segment, `[...]`
is a character class (`[!...]` negates), and a segment of exactly `**` spans directories, as in .gitignore. A pattern
that could never match a repository path (absolute, with `..`, empty) is refused with a clear error instead of
silently selecting nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_JOB_GLOBS: tuple[str, ...] = ("jobs/**/*.nomad", "jobs/**/*.nomad.hcl")


class InvalidGlob(ValueError):
    """A path pattern that cannot select repository paths."""


def _translate_segment(segment: str, pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # consecutive stars inside a segment are one star, as in .gitignore
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            start = i + 1
            if segment[start : start + 1] in ("!", "^"):
                start += 1
            if segment[start : start + 1] == "]":
                start += 1  # a "]" right after the opening is a member, not the end
            end = segment.find("]", start)
            if end < 0:
                raise InvalidGlob(f"unclosed '[' in path pattern {pattern!r}")
            body = segment[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[{'^/' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _translate(pattern: str) -> str:
    if not pattern or pattern.strip() != pattern:
        raise InvalidGlob(f"path pattern {pattern!r} is empty or has surrounding spaces")
    if pattern.startswith("/"):
        raise InvalidGlob(f"path pattern {pattern!r} is absolute; patterns are relative to the repository root")
    segments = pattern.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidGlob(f"path pattern {pattern!r} has an empty, '.' or '..' segment")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            # "a/**/b": zero or more whole directories; "a/**": everything below a.
            parts.append(".+" if last else "(?:[^/]+/)*")
        else:
            parts.append(_translate_segment(segment, pattern) + ("" if last else "/"))
    return "".join(parts)


@dataclass(frozen=True)
class PathGlobs:
    """A compiled set of patterns; a path matches when any pattern matches it."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.patterns:
            raise InvalidGlob("at least one path pattern is needed")
        joined = "|".join(f"(?:{_translate(p)})" for p in self.patterns)
        try:
            compiled = re.compile(f"(?:{joined})\\Z", re.DOTALL)
        except re.error as exc:
            raise InvalidGlob(f"path patterns {list(self.patterns)!r} are not valid: {exc}") from exc
        object.__setattr__(self, "_regex", compiled)

    @classmethod
    def of(cls, patterns: Sequence[str] | str) -> PathGlobs:
        return cls((patterns,) if isinstance(patterns, str) else tuple(patterns))

    def matches(self, path: str) -> bool:
        return self._regex.match(path) is not None

    def select(self, paths: Iterable[str]) -> list[str]:
        """The matching paths, sorted, so callers see a stable order whatever the input order."""
        return sorted(p for p in paths if self.matches(p))


DEFAULT_JOB_PATHS = PathGlobs(DEFAULT_JOB_GLOBS)
