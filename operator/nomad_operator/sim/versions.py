"""Version ordering for the ``version`` and ``semver`` constraint operands, as Nomad's scheduler compares them.

A constraint such as ``${attr.nomad.version} version ">= 1.7"`` or ``${attr.kernel.version} semver "< 6.2"`` decides
where a job may run, and the two operands follow different libraries: hashicorp/go-version for ``version`` (loose
parsing of "1.2" or "v1.2.3-beta.1+meta", ``~>``, and a pre-release that satisfies an ordering bound only when the
bound names the same base with a pre-release) and Nomad's strict semver parser for ``semver`` (three segments at
most, no ``~>``, pre-releases ordered as semver orders them). The hazard is accepting a pre-release or a malformed
version that Nomad would refuse, so parsing returns None where those libraries return an error, and such a
constraint never matches. Parsing is cached: the same bound is checked against every node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

_VERSION_CACHE_SIZE = 1024

_PRERELEASE_PART = r"[0-9A-Za-z\-~]+"
_LOOSE_VERSION = re.compile(
    r"v?(?P<segments>[0-9]+(?:\.[0-9]+)*)"
    rf"(?:-(?P<pre>[0-9]+[0-9A-Za-z\-~]*(?:\.{_PRERELEASE_PART})*)|-?(?P<pre2>[A-Za-z\-~]+[0-9A-Za-z\-~]*"
    rf"(?:\.{_PRERELEASE_PART})*))?"
    rf"(?:\+(?P<meta>{_PRERELEASE_PART}(?:\.{_PRERELEASE_PART})*))?"
)
_STRICT_SEMVER = re.compile(
    r"v?(?P<segments>[0-9]+(?:\.[0-9]+){0,2})"
    rf"(?:-(?P<pre>{_PRERELEASE_PART}(?:\.{_PRERELEASE_PART})*))?"
    rf"(?:\+(?P<meta>{_PRERELEASE_PART}(?:\.{_PRERELEASE_PART})*))?"
)
_CONSTRAINT_PART = re.compile(r"\s*(?P<op>~>|>=|<=|!=|=|>|<)?\s*(?P<version>\S+)\s*")
_SEMVER_OPERATORS = frozenset({"", "=", "!=", ">", "<", ">=", "<="})


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version: segments padded to three, the number of segments written, and the pre-release."""

    segments: tuple[int, ...]
    written: int
    prerelease: str

    def compare(self, other: Version) -> int:
        width = max(len(self.segments), len(other.segments))
        mine = self.segments + (0,) * (width - len(self.segments))
        theirs = other.segments + (0,) * (width - len(other.segments))
        if mine != theirs:
            return -1 if mine < theirs else 1
        return _compare_prerelease(self.prerelease, other.prerelease)


def _compare_prerelease(left: str, right: str) -> int:
    if left == right:
        return 0
    if not left:
        return 1  # a release sorts after its pre-releases
    if not right:
        return -1
    left_parts, right_parts = left.split("."), right.split(".")
    for mine, theirs in zip(left_parts, right_parts, strict=False):
        if mine == theirs:
            continue
        mine_num, theirs_num = mine.isdigit(), theirs.isdigit()
        if mine_num and theirs_num:
            return -1 if int(mine) < int(theirs) else 1
        if mine_num != theirs_num:
            return -1 if mine_num else 1  # numeric identifiers sort before alphanumeric ones
        return -1 if mine < theirs else 1
    return -1 if len(left_parts) < len(right_parts) else 1


def _version_from_match(match: re.Match[str]) -> Version:
    parts = tuple(int(piece) for piece in match.group("segments").split("."))
    padded = parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts
    prerelease = match.group("pre") or (match.groupdict().get("pre2") or "")
    return Version(segments=padded, written=len(parts), prerelease=prerelease)


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def parse_version(text: str) -> Version | None:
    """go-version's NewVersion (loose: "1.2", "v1.2.3-beta.1+meta"); None when it does not parse."""
    match = _LOOSE_VERSION.fullmatch(text.strip())
    return _version_from_match(match) if match else None


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def parse_semver(text: str) -> Version | None:
    """Strict semver: at most three numeric segments, optional pre-release and build metadata."""
    match = _STRICT_SEMVER.fullmatch(text.strip())
    return _version_from_match(match) if match else None


VersionCheck = Callable[[Version], bool]


def _prerelease_allowed(version: Version, bound: Version) -> bool:
    # go-version: a pre-release only satisfies an ordering constraint that names the same base with a pre-release.
    if bound.prerelease and version.prerelease:
        return bound.segments == version.segments
    return not (version.prerelease and not bound.prerelease)


def _pessimistic(version: Version, bound: Version) -> bool:
    if not _prerelease_allowed(version, bound) or (bound.prerelease and not version.prerelease):
        return False
    if version.compare(bound) < 0:
        return False
    if len(bound.segments) > len(version.segments):
        return False
    for index in range(bound.written - 1):
        if version.segments[index] != bound.segments[index]:
            return False
    last = len(bound.segments) - 1
    return bound.segments[last] <= version.segments[last]


def _single_check(operator: str, bound: Version, *, semver: bool) -> VersionCheck:
    def ordered(accept: Callable[[int], bool]) -> VersionCheck:
        if semver:
            return lambda version: accept(version.compare(bound))
        return lambda version: _prerelease_allowed(version, bound) and accept(version.compare(bound))

    if operator in ("", "="):
        return lambda version: version.compare(bound) == 0
    if operator == "!=":
        return lambda version: version.compare(bound) != 0
    if operator == ">":
        return ordered(lambda result: result > 0)
    if operator == "<":
        return ordered(lambda result: result < 0)
    if operator == ">=":
        return ordered(lambda result: result >= 0)
    if operator == "<=":
        return ordered(lambda result: result <= 0)
    return lambda version: _pessimistic(version, bound)


def _parse_constraint_list(text: str, *, semver: bool) -> VersionCheck | None:
    checks: list[VersionCheck] = []
    for part in text.split(","):
        match = _CONSTRAINT_PART.fullmatch(part)
        if match is None:
            return None
        operator = match.group("op") or ""
        if semver and operator not in _SEMVER_OPERATORS:
            return None
        bound = parse_semver(match.group("version")) if semver else parse_version(match.group("version"))
        if bound is None:
            return None
        checks.append(_single_check(operator, bound, semver=semver))
    return lambda version: all(check(version) for check in checks)


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def parse_version_constraint(text: str) -> VersionCheck | None:
    """go-version's NewConstraint (">= 1.2, < 2.0", "~> 1.4"); None when it does not parse."""
    return _parse_constraint_list(text, semver=False)


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def parse_semver_constraint(text: str) -> VersionCheck | None:
    """Nomad's semver constraints: no ``~>``, and pre-releases order like semver (1.3.0-beta1 > 1.2.0)."""
    return _parse_constraint_list(text, semver=True)
