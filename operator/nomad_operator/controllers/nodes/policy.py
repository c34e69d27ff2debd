"""`NodePolicy`: how the node controller damps flapping nodes and rebalances work, with defaults that need no resource.

A cluster runs with the defaults until someone writes a `NodePolicy` resource (kind in `crds/nodepolicy.yaml`), so
the defaults must be safe on their own. The hazard this module handles is a bad resource: a typo in a duration or a
threshold of zero must not switch damping off silently or hold every node. `policy_from_spec` checks every field,
reports every problem at once in a `PolicyError`, and the controller keeps the policy it had (or the defaults) until
the resource is fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nomad_operator.controllers.nodes.defaults import (
    DEFAULT_FLAP_DAMPING,
    DEFAULT_FLAP_THRESHOLD,
    DEFAULT_FLAP_WINDOW_SECONDS,
    DEFAULT_LARGE_CLUSTER_HELD_FRACTION,
    DEFAULT_REBALANCE,
    DEFAULT_REBALANCE_COOLDOWN_SECONDS,
    DEFAULT_REBALANCE_DRY_RUN,
    DEFAULT_REBALANCE_MAX_SKEW,
    DEFAULT_REBALANCE_WINDOW_SECONDS,
    DEFAULT_STABLE_SECONDS,
    FLAP_HISTORY_MAX_DOWNS,
)
from nomad_operator.durations import InvalidDuration, parse_duration, to_seconds


class PolicyError(ValueError):
    """A NodePolicy spec with one or more invalid fields; `problems` lists each as "path: what is wrong"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid NodePolicy: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePolicy:
    """The node controller's settings. Times are seconds."""

    flap_damping: bool = DEFAULT_FLAP_DAMPING
    flap_threshold: int = DEFAULT_FLAP_THRESHOLD
    flap_window: float = DEFAULT_FLAP_WINDOW_SECONDS
    stable_for: float = DEFAULT_STABLE_SECONDS
    large_cluster_held_fraction: float = DEFAULT_LARGE_CLUSTER_HELD_FRACTION
    rebalance: bool = DEFAULT_REBALANCE
    rebalance_dry_run: bool = DEFAULT_REBALANCE_DRY_RUN
    rebalance_cooldown: float = DEFAULT_REBALANCE_COOLDOWN_SECONDS
    rebalance_max_skew: int = DEFAULT_REBALANCE_MAX_SKEW
    rebalance_window: float = DEFAULT_REBALANCE_WINDOW_SECONDS

    def __post_init__(self) -> None:
        problems = _check_ranges(self)
        if problems:
            raise PolicyError(problems)


def _check_ranges(policy: NodePolicy) -> list[str]:
    problems = []
    if not 1 <= policy.flap_threshold <= FLAP_HISTORY_MAX_DOWNS:
        problems.append(f"flapDamping.threshold: must be 1..{FLAP_HISTORY_MAX_DOWNS}, got {policy.flap_threshold}")
    for name, value in (
        ("flapDamping.window", policy.flap_window),
        ("flapDamping.stableFor", policy.stable_for),
        ("rebalance.window", policy.rebalance_window),
    ):
        if not (math.isfinite(value) and value > 0):
            problems.append(f"{name}: must be a duration above zero, got {value!r}")
    if not (math.isfinite(policy.rebalance_cooldown) and policy.rebalance_cooldown >= 0):
        problems.append(f"rebalance.cooldown: must be a duration of zero or more, got {policy.rebalance_cooldown!r}")
    if not 0 < policy.large_cluster_held_fraction <= 0.5:
        problems.append(
            f"flapDamping.largeClusterHeldFraction: must be above 0 and at most 0.5, got "
            f"{policy.large_cluster_held_fraction!r}"
        )
    if policy.rebalance_max_skew < 1:
        problems.append(f"rebalance.maxSkew: must be 1 or more, got {policy.rebalance_max_skew}")
    return problems


DEFAULT_POLICY = NodePolicy()

_SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    # spec section -> spec field -> (NodePolicy attribute, value type)
    "flapDamping": {
        "enabled": ("flap_damping", "bool"),
        "threshold": ("flap_threshold", "int"),
        "window": ("flap_window", "duration"),
        "stableFor": ("stable_for", "duration"),
        "largeClusterHeldFraction": ("large_cluster_held_fraction", "fraction"),
    },
    "rebalance": {
        "enabled": ("rebalance", "bool"),
        "dryRun": ("rebalance_dry_run", "bool"),
        "cooldown": ("rebalance_cooldown", "duration"),
        "maxSkew": ("rebalance_max_skew", "int"),
        "window": ("rebalance_window", "duration"),
    },
}


def policy_from_spec(spec: Mapping[str, Any]) -> NodePolicy:
    """A `NodePolicy` from a NodePolicy resource's `spec` (missing fields keep their defaults).

    Raises `PolicyError` listing every invalid or unknown field; nothing partial is returned.
    """
    if not isinstance(spec, Mapping):
        raise PolicyError([f"spec: must be an object, got {type(spec).__name__}"])
    problems: list[str] = []
    values: dict[str, Any] = {}
    for section in sorted(set(spec) - set(_SECTIONS)):
        problems.append(f"{section}: unknown field (known: {', '.join(sorted(_SECTIONS))})")
    for section, fields in _SECTIONS.items():
        body = spec.get(section)
        if body is None:
            continue
        if not isinstance(body, Mapping):
            problems.append(f"{section}: must be an object, got {type(body).__name__}")
            continue
        for name in sorted(set(body) - set(fields)):
            problems.append(f"{section}.{name}: unknown field (known: {', '.join(sorted(fields))})")
        for name, (attribute, kind) in fields.items():
            if name in body:
                value, problem = _convert(body[name], kind)
                if problem:
                    problems.append(f"{section}.{name}: {problem}")
                else:
                    values[attribute] = value
    try:
        policy = NodePolicy(**values)
    except PolicyError as error:
        problems.extend(error.problems)
    if problems:
        raise PolicyError(problems)
    return policy


def _convert(value: Any, kind: str) -> tuple[Any, str]:
    """(converted value, "") or (None, what is wrong)."""
    if kind == "bool":
        return (value, "") if isinstance(value, bool) else (None, f"must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"must be a whole number, got {value!r}"
        return value, ""
    if kind == "fraction":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number, got {value!r}"
        return float(value), ""
    if not isinstance(value, str):
        return None, f"must be a duration string such as 90s or 5m, got {value!r}"
    try:
        seconds = to_seconds(parse_duration(value))
    except InvalidDuration as error:
        return None, f"{error}; use a duration such as 90s or 5m"
    return seconds, ""
