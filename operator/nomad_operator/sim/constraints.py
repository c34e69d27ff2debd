"""Nomad's constraint language, evaluated against one simulated node: targets, operands, versions, datacenter globs.

The simulator's scheduler filters nodes with these rules, and the node controller and the GitOps tests read the
results back as ``FailedTGAllocs`` (``ConstraintFiltered`` keys are the constraint's own text). The hazard is a quiet
mismatch with Nomad: a lexical instead of a numeric ``<``, a missing attribute that matches ``!=``, a ``version``
constraint that accepts a pre-release, or a ``dc*`` glob that matches too much would let a test pass against the
simulator and fail against a real cluster. The semantics follow hashicorp/nomad ``scheduler/feasible`` (resolveTarget,
checkConstraint, checkOrder), hashicorp/go-version (``version``) and Nomad's strict semver parser (``semver``).
Everything here is pure and cached where parsing would repeat for every node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DISTINCT_HOSTS = "distinct_hosts"
DISTINCT_PROPERTY = "distinct_property"
DEFAULT_REGION = "global"
_GO_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})  # strconv.ParseBool's false spellings

# Operands the per-node checker leaves to dedicated iterators (they depend on other placements, not on the node).
PLACEMENT_DEPENDENT_OPERANDS = frozenset({DISTINCT_HOSTS, DISTINCT_PROPERTY})
_REGEXP_CACHE_SIZE = 512
_VERSION_CACHE_SIZE = 1024


class NodeView(Protocol):
    """What a constraint can see of a node (``NodeInfo`` satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def datacenter(self) -> str: ...
    @property
    def node_class(self) -> str: ...
    @property
    def node_pool(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def meta(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Constraint:
    """One ``constraint`` block as the API job JSON carries it."""

    ltarget: str
    rtarget: str
    operand: str

    def __str__(self) -> str:
        # Nomad's Constraint.String(): the key of AllocMetric.ConstraintFiltered.
        return f"{self.ltarget} {self.operand} {self.rtarget}"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Constraint:
        operand = str(raw.get("Operand") or "=")
        return cls(ltarget=str(raw.get("LTarget") or ""), rtarget=str(raw.get("RTarget") or ""), operand=operand)


@dataclass(frozen=True, slots=True)
class Affinity:
    """One ``affinity`` block: a constraint that adds ``weight`` (-100..100) to a node's score when it matches."""

    constraint: Constraint
    weight: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Affinity:
        weight = raw.get("Weight")
        return cls(constraint=Constraint.from_json(raw), weight=50 if weight is None else int(weight))


def parse_constraints(raw: Sequence[Mapping[str, Any]] | None) -> tuple[Constraint, ...]:
    return tuple(Constraint.from_json(item) for item in raw or ())


def parse_affinities(raw: Sequence[Mapping[str, Any]] | None) -> tuple[Affinity, ...]:
    return tuple(Affinity.from_json(item) for item in raw or ())


def resolve_target(target: str, node: NodeView, *, region: str = DEFAULT_REGION) -> tuple[str, bool]:
    """Resolve an LTarget/RTarget: a literal, or ``${...}`` against the node. Unknown targets are ``("", False)``."""
    if not target.startswith("${"):
        return target, True
    if target == "${node.unique.id}":
        return node.id, True
    if target == "${node.datacenter}":
        return node.datacenter, True
    if target == "${node.unique.name}":
        return node.name, True
    if target == "${node.class}":
        return node.node_class, True
    if target == "${node.pool}":
        return node.node_pool, True
    if target == "${node.region}":
        return region, True
    if target.startswith("${attr."):
        key = target[len("${attr.") :].removesuffix("}")
        value = node.attributes.get(key)
        return ("", False) if value is None else (value, True)
    if target.startswith("${meta."):
        key = target[len("${meta.") :].removesuffix("}")
        value = node.meta.get(key)
        return ("", False) if value is None else (value, True)
    return "", False


def meets_constraint(constraint: Constraint, node: NodeView, *, region: str = DEFAULT_REGION) -> bool:
    """Whether ``node`` satisfies one constraint (distinct_* always pass here: they depend on placements)."""
    left, left_found = resolve_target(constraint.ltarget, node, region=region)
    right, right_found = resolve_target(constraint.rtarget, node, region=region)
    return check_operand(constraint.operand, left, right, left_found=left_found, right_found=right_found)


def check_operand(operand: str, left: str, right: str, *, left_found: bool, right_found: bool) -> bool:
    """Nomad's checkConstraint on resolved values; an unknown operand never matches."""
    if operand in PLACEMENT_DEPENDENT_OPERANDS:
        return True
    if operand == "is_set":
        return left_found
    if operand == "is_not_set":
        return not left_found
    if operand in ("!=", "not"):
        # Missing targets resolve to "": a missing attribute differs from any non-empty literal.
        return left != right
    both = left_found and right_found
    if not both:
        return False
    check = _BINARY_CHECKS.get(operand)
    return check(left, right) if check is not None else False


def _equal(left: str, right: str) -> bool:
    return left == right


_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _ordered(operand: str) -> Callable[[str, str], bool]:
    def compare(left: str, right: str) -> bool:
        # Integers if both parse, then floats, then lexical: "10" > "9" but "b" > "a10".
        lnum: float | int | str
        rnum: float | int | str
        if _INTEGER.fullmatch(left) and _INTEGER.fullmatch(right):
            lnum, rnum = int(left), int(right)
        elif _FLOAT.fullmatch(left) and _FLOAT.fullmatch(right):
            lnum, rnum = float(left), float(right)
        else:
            lnum, rnum = left, right
        if operand == "<":
            return lnum < rnum  # type: ignore[operator]
        if operand == "<=":
            return lnum <= rnum  # type: ignore[operator]
        if operand == ">":
            return lnum > rnum  # type: ignore[operator]
        return lnum >= rnum  # type: ignore[operator]

    return compare


def _regexp(left: str, right: str) -> bool:
    pattern = _compile_regexp(right)
    return pattern is not None and pattern.search(left) is not None


@functools.lru_cache(maxsize=_REGEXP_CACHE_SIZE)
def _compile_regexp(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _split_set(value: str) -> set[str]:
    return {item.strip() for item in value.split(",")}


def _set_contains_all(left: str, right: str) -> bool:
    return _split_set(right) <= _split_set(left)


def _set_contains_any(left: str, right: str) -> bool:
    return not _split_set(right).isdisjoint(_split_set(left))


def _version(left: str, right: str) -> bool:
    version = parse_version(left)
    check = parse_version_constraint(right)
    return version is not None and check is not None and check(version)


def _semver(left: str, right: str) -> bool:
    version = parse_semver(left)
    check = parse_semver_constraint(right)
    return version is not None and check is not None and check(version)


_BINARY_CHECKS: dict[str, Callable[[str, str], bool]] = {
    "=": _equal,
    "==": _equal,
    "is": _equal,
    "<": _ordered("<"),
    "<=": _ordered("<="),
    ">": _ordered(">"),
    ">=": _ordered(">="),
    "regexp": _regexp,
    "set_contains": _set_contains_all,
    "set_contains_all": _set_contains_all,
    "set_contains_any": _set_contains_any,
    "version": _version,
    "semver": _semver,
}


# ---- versions (hashicorp/go-version and Nomad's semver constraints) -------------------------------------------------

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


# ---- datacenters, distinct_hosts -------------------------------------------------------------------------------------


def datacenter_matches(patterns: Iterable[str], datacenter: str) -> bool:
    """Nomad's Node.IsInAnyDC: each pattern is a glob where only ``*`` is special."""
    return any(_glob(pattern, datacenter) for pattern in patterns)


def _glob(pattern: str, subject: str) -> bool:
    if pattern == "*":
        return True
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return subject == pattern
    if not subject.startswith(pieces[0]):
        return False
    position = len(pieces[0])
    for middle in pieces[1:-1]:
        found = subject.find(middle, position)
        if found < 0:
            return False
        position = found + len(middle)
    return subject.endswith(pieces[-1]) and len(subject) - len(pieces[-1]) >= position


def wants_distinct_hosts(constraints: Iterable[Constraint]) -> bool:
    """The first distinct_hosts constraint decides: empty or unparsable RTarget means true, like Nomad."""
    for constraint in constraints:
        if constraint.operand == DISTINCT_HOSTS:
            return constraint.rtarget not in _GO_FALSE
    return False
