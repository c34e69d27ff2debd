"""The node controller: node-down reports, flap damping, rebalancing when a node returns.

Nomad replaces lost allocations where it can, but it never says what capacity is gone and why, lets a flapping node
pull work back and forth, and never moves work back onto a node that returns. This package closes those gaps:

- `incidents` and `blocked_reasons`: a node went down, what it took per job, and whether each job's lost capacity
  was replaced, waits, or is blocked (distinct_hosts, port, memory, cpu, ...);
- `flapping`: hold a node that went down N times within M ineligible until it is stable for S, within a budget of
  one node in a small cluster, released early whenever another node fails;
- `rebalance`: after a node returns, stop one allocation at a time of a lopsided service job on its busiest node;
- `policy`: the `NodePolicy` settings (kind in `crds/nodepolicy.yaml`) and their defaults;
- `controller`: all of it on the runtime, writing only as the leader; `incident_view.NodeIncidents` is the read-only
  view other controllers (GitOps job health) and the status page use.

The decision modules are pure (no clock, no I/O) and tested without a network.
"""

from nomad_operator.controllers.nodes.blocked_reasons import BlockedReason, classify_failure
from nomad_operator.controllers.nodes.cluster_view import JobRef
from nomad_operator.controllers.nodes.controller import (
    NODES_KEY,
    REBALANCE_KEY,
    AlwaysLeader,
    Leadership,
    NodeClient,
    NodeController,
)
from nomad_operator.controllers.nodes.flapping import FlapDamper, Hold, Release, hold_budget
from nomad_operator.controllers.nodes.incident_view import NodeIncidents
from nomad_operator.controllers.nodes.incidents import GroupCapacity, Incident, IncidentBook, JobImpact
from nomad_operator.controllers.nodes.policy import DEFAULT_POLICY, NodePolicy, PolicyError, policy_from_spec
from nomad_operator.controllers.nodes.rebalance import Move, RebalanceDecision, RebalanceTracker, choose_move

__all__ = [
    "DEFAULT_POLICY",
    "NODES_KEY",
    "REBALANCE_KEY",
    "AlwaysLeader",
    "BlockedReason",
    "FlapDamper",
    "GroupCapacity",
    "Hold",
    "Incident",
    "IncidentBook",
    "JobImpact",
    "JobRef",
    "Leadership",
    "Move",
    "NodeClient",
    "NodeController",
    "NodeIncidents",
    "NodePolicy",
    "PolicyError",
    "RebalanceDecision",
    "RebalanceTracker",
    "Release",
    "choose_move",
    "classify_failure",
    "hold_budget",
    "policy_from_spec",
]
