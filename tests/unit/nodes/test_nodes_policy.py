"""NodePolicy: the defaults, a resource's spec read into settings, and every bad field reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomad_operator.controllers.nodes.policy import DEFAULT_POLICY, NodePolicy, PolicyError, policy_from_spec
from nomad_operator.runtime import load_kinds


def test_defaults_are_the_documented_ones() -> None:
    policy = NodePolicy()
    assert (policy.flap_threshold, policy.flap_window, policy.stable_for) == (3, 600.0, 300.0)
    assert policy.flap_damping
    assert policy.rebalance
    assert not policy.rebalance_dry_run
    assert policy.rebalance_cooldown == 60.0
    assert policy == DEFAULT_POLICY


def test_empty_spec_gives_the_defaults() -> None:
    assert policy_from_spec({}) == DEFAULT_POLICY


def test_spec_overrides_each_field() -> None:
    policy = policy_from_spec(
        {
            "flapDamping": {"enabled": False, "threshold": 5, "window": "1m", "stableFor": "2s",
                            "largeClusterHeldFraction": 0.1},
            "rebalance": {"enabled": True, "dryRun": True, "cooldown": "500ms", "maxSkew": 2, "window": "1h"},
        }
    )  # fmt: skip
    assert not policy.flap_damping
    assert (policy.flap_threshold, policy.flap_window, policy.stable_for) == (5, 60.0, 2.0)
    assert policy.large_cluster_held_fraction == 0.1
    assert policy.rebalance_dry_run
    assert policy.rebalance_cooldown == 0.5
    assert (policy.rebalance_max_skew, policy.rebalance_window) == (2, 3600.0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"flapDamping": {"window": "10 minutes"}}, "flapDamping.window: invalid duration"),
        ({"flapDamping": {"window": 600}}, "flapDamping.window: must be a duration string"),
        ({"flapDamping": {"threshold": 0}}, "flapDamping.threshold: must be 1..64"),
        ({"flapDamping": {"threshold": True}}, "flapDamping.threshold: must be a whole number"),
        ({"flapDamping": {"enabled": "yes"}}, "flapDamping.enabled: must be true or false"),
        ({"flapDamping": {"stableFor": "0s"}}, "flapDamping.stableFor: must be a duration above zero"),
        ({"flapDamping": {"largeClusterHeldFraction": 0.9}}, "largeClusterHeldFraction: must be above 0"),
        ({"flapDamping": {"thresold": 3}}, "flapDamping.thresold: unknown field"),
        ({"flapDamping": "on"}, "flapDamping: must be an object"),
        ({"rebalance": {"cooldown": "-5s"}}, "rebalance.cooldown: must be a duration of zero or more"),
        ({"rebalance": {"maxSkew": 0}}, "rebalance.maxSkew: must be 1 or more"),
        ({"rebalancing": {}}, "rebalancing: unknown field"),
    ],
)
def test_each_bad_field_is_named(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_spec(spec)
    assert any(fragment in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_spec({"flapDamping": {"threshold": -1, "window": "x"}, "rebalance": {"dryRun": 1}, "extra": 1})
    assert len(caught.value.problems) == 4
    assert "invalid NodePolicy" in str(caught.value)


def test_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PolicyError, match="spec: must be an object"):
        policy_from_spec(["flapDamping"])  # type: ignore[arg-type]


def test_constructor_checks_ranges_too() -> None:
    with pytest.raises(PolicyError, match=r"flapDamping\.window"):
        NodePolicy(flap_window=float("nan"))


FULL_SPEC = {
    "flapDamping": {"enabled": True, "threshold": 5, "window": "1m", "stableFor": "2s",
                    "largeClusterHeldFraction": 0.25},
    "rebalance": {"enabled": True, "dryRun": False, "cooldown": "0s", "maxSkew": 1, "window": "30m"},
}


def test_kind_file_and_reader_agree(project_root: Path) -> None:
    definition = load_kinds(project_root / "crds").get("NodePolicy")
    assert definition.spec_violations(FULL_SPEC) == []
    assert policy_from_spec(FULL_SPEC).flap_threshold == 5
    # A field the schema refuses is one the reader refuses too.
    bad = {"flapDamping": {"window": "10 minutes"}}
    assert definition.spec_violations(bad)
    with pytest.raises(PolicyError):
        policy_from_spec(bad)
