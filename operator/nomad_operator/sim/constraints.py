"""Nomad's constraint language, evaluated against one simulated node: targets, operands, datacenter globs.

The simulator's scheduler filters nodes with these rules, and the node controller and the GitOps tests read the
results back as ``FailedTGAllocs`` (``ConstraintFiltered`` keys are the constraint's own text). The hazard is a quiet
mismatch with Nomad: a lexical instead of a numeric ``<``, a missing attribute that matches ``!=``, a ``version``
constraint that accepts a pre-release, or a ``dc*`` glob that matches too much would let a test pass against the
simulator and fail against a real cluster. The semantics follow hashicorp/nomad ``scheduler/feasible`` (resolveTarget,
checkConstraint, checkOrder); the ``version`` and ``semver`` operands compare as ``versions`` says. Everything here is
pure and cached where parsing would repeat for every node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nomad_operator.sim.versions import (
    parse_semver,
    parse_semver_constraint,
    parse_version,
    parse_version_constraint,
)

DISTINCT_HOSTS = "distinct_hosts"
DISTINCT_PROPERTY = "distinct_property"
DEFAULT_REGION = "global"
_GO_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})  # strconv.ParseBool's false spellings

# Operands the per-node checker leaves to dedicated iterators (they depend on other placements, not on the node).
PLACEMENT_DEPENDENT_OPERANDS = frozenset({DISTINCT_HOSTS, DISTINCT_PROPERTY})
_REGEXP_CACHE_SIZE = 512


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
