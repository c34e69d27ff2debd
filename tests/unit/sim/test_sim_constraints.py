"""Nomad's constraint language on simulated nodes: targets, every operand, versions, datacenter globs."""

from __future__ import annotations

import pytest
from test_sim_scheduler_support import make_node

from nomad_operator.sim.constraints import (
    Constraint,
    check_operand,
    datacenter_matches,
    meets_constraint,
    resolve_target,
    wants_distinct_hosts,
)

NODE = make_node(
    "pi1",
    datacenter="home",
    node_class="arm",
    attributes={"cpu.arch": "arm64", "kernel.version": "6.1.21-v8+", "cpu.numcores": "4", "os.features": "a, b,c"},
    meta={"rack": "r1", "weight": "10"},
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("${node.unique.id}", ("node-pi1", True)),
        ("${node.unique.name}", ("pi1", True)),
        ("${node.datacenter}", ("home", True)),
        ("${node.class}", ("arm", True)),
        ("${node.pool}", ("default", True)),
        ("${node.region}", ("global", True)),
        ("${attr.cpu.arch}", ("arm64", True)),
        ("${meta.rack}", ("r1", True)),
        ("${attr.missing}", ("", False)),
        ("${meta.missing}", ("", False)),
        ("${node.unknown}", ("", False)),
        ("literal", ("literal", True)),
        ("", ("", True)),
    ],
)
def test_targets_resolve_like_nomad(target: str, expected: tuple[str, bool]) -> None:
    assert resolve_target(target, NODE) == expected


def test_region_comes_from_the_job() -> None:
    assert resolve_target("${node.region}", NODE, region="eu") == ("eu", True)


@pytest.mark.parametrize(
    ("ltarget", "operand", "rtarget", "expected"),
    [
        ("${attr.cpu.arch}", "=", "arm64", True),
        ("${attr.cpu.arch}", "==", "amd64", False),
        ("${attr.cpu.arch}", "is", "arm64", True),
        ("${attr.cpu.arch}", "!=", "amd64", True),
        ("${attr.cpu.arch}", "not", "arm64", False),
        ("${attr.missing}", "!=", "x", True),  # a missing attribute differs from a value
        ("${attr.missing}", "=", "", False),  # but never equals anything
        ("${attr.missing}", "!=", "", False),  # it resolves to "" as in Nomad
        ("${meta.weight}", ">", "9", True),  # numeric, not lexical
        ("${meta.weight}", "<", "9", False),
        ("${meta.weight}", ">=", "10", True),
        ("${meta.weight}", "<=", "10.5", True),  # float when one side is not an integer
        ("${meta.rack}", ">", "r0", True),  # lexical when not numbers
        ("${meta.rack}", "<", "R9", False),
        ("${attr.missing}", "<", "5", False),
        ("${attr.kernel.version}", "regexp", "^6\\.1", True),
        ("${attr.kernel.version}", "regexp", "v8", True),  # a search, not a full match
        ("${attr.kernel.version}", "regexp", "[", False),  # an invalid pattern never matches
        ("${attr.os.features}", "set_contains", "a,c", True),
        ("${attr.os.features}", "set_contains_all", "a, d", False),
        ("${attr.os.features}", "set_contains_any", "d,b", True),
        ("${attr.os.features}", "set_contains_any", "d,e", False),
        ("${attr.cpu.arch}", "is_set", "", True),
        ("${attr.missing}", "is_set", "", False),
        ("${attr.missing}", "is_not_set", "", True),
        ("${attr.cpu.arch}", "is_not_set", "", False),
        ("${attr.cpu.arch}", "near", "arm64", False),  # an unknown operand never matches
        ("", "distinct_hosts", "true", True),  # placement-dependent: decided elsewhere
        ("${meta.rack}", "distinct_property", "", True),
        ("${node.datacenter}", "=", "${node.datacenter}", True),
    ],
)
def test_operands(ltarget: str, operand: str, rtarget: str, expected: bool) -> None:
    assert meets_constraint(Constraint(ltarget, rtarget, operand), NODE) is expected


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [
        ("1.9.3", ">= 1.8.0", True),
        ("1.9.3", ">= 1.8, < 2.0", True),
        ("2.0.1", ">= 1.8, < 2.0", False),
        ("1.9", "= 1.9.0", True),
        ("1.9.3", "!= 1.9.3", False),
        ("1.9.3", "~> 1.9", True),
        ("2.0.0", "~> 1.9", False),
        ("1.9.7", "~> 1.9.3", True),
        ("1.10.0", "~> 1.9.3", False),
        ("1.9.0-beta1", ">= 1.8.0", False),  # go-version: a pre-release only matches a pre-release bound
        ("1.9.0-beta2", ">= 1.9.0-beta1", True),
        ("v1.2.3", "1.2.3", True),
        ("6.1.21-v8+", ">= 6.1", False),  # pre-release "v8+"... is not a clean version: no match
        ("not-a-version", ">= 1.0", False),
        ("1.0.0", "=> 1.0", False),  # a malformed constraint never matches
    ],
)
def test_version_operand(version: str, constraint: str, expected: bool) -> None:
    assert check_operand("version", version, constraint, left_found=True, right_found=True) is expected


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [
        ("1.3.0-beta1", ">= 1.2.0", True),  # semver orders pre-releases instead of refusing them
        ("1.3.0-beta1", ">= 1.3.0", False),
        ("1.3.0-beta.2", "> 1.3.0-beta.1", True),
        ("1.3.0-beta.11", "> 1.3.0-beta.2", True),  # numeric identifiers compare as numbers
        ("1.3.0-alpha", "< 1.3.0-beta", True),
        ("1.3.0", "~> 1.3", False),  # no pessimistic operator in semver constraints
        ("1.2.3.4", ">= 1.0.0", False),  # strict: at most three segments
    ],
)
def test_semver_operand(version: str, constraint: str, expected: bool) -> None:
    assert check_operand("semver", version, constraint, left_found=True, right_found=True) is expected


def test_version_needs_both_sides() -> None:
    assert check_operand("version", "", ">= 1.0", left_found=False, right_found=True) is False


@pytest.mark.parametrize(
    ("patterns", "datacenter", "expected"),
    [
        (["*"], "anything", True),
        (["dc1"], "dc1", True),
        (["dc1"], "dc10", False),
        (["dc*"], "dc10", True),
        (["dc*"], "edge", False),
        (["*-east"], "us-east", True),
        (["us-*-1"], "us-east-1", True),
        (["us-*-1"], "us-1", False),
        (["d?1"], "dc1", False),  # only * is special
        (["edge", "dc*"], "dc2", True),
        ([], "dc1", False),
    ],
)
def test_datacenter_globs(patterns: list[str], datacenter: str, expected: bool) -> None:
    assert datacenter_matches(patterns, datacenter) is expected


@pytest.mark.parametrize(
    ("rtarget", "expected"),
    [("true", True), ("", True), ("false", False), ("0", False), ("F", False), ("nonsense", True)],
)
def test_distinct_hosts_value(rtarget: str, expected: bool) -> None:
    assert wants_distinct_hosts([Constraint("", rtarget, "distinct_hosts")]) is expected


def test_constraint_text_is_nomads() -> None:
    raw = {"LTarget": "${attr.cpu.arch}", "RTarget": "amd64", "Operand": "="}
    assert str(Constraint.from_json(raw)) == "${attr.cpu.arch} = amd64"
    assert Constraint.from_json({"LTarget": "${attr.x}", "RTarget": "y"}).operand == "="
