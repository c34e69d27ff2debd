"""Every default and named limit of the node controller, in one place.

The node controller acts on a cluster that has just lost a machine, so a surprising default here costs capacity at
the worst moment. Each value says why it is what it is; `NodePolicy` takes its defaults from here, and a `NodePolicy`
resource overrides them per cluster.
"""

from __future__ import annotations

from typing import Final

# --- flap damping -------------------------------------------------------------------------------------------------
DEFAULT_FLAP_DAMPING: Final = True
"""Flap damping is on: a node that keeps dying pulls work back and forth on every return."""
DEFAULT_FLAP_THRESHOLD: Final = 3
"""A node that went down this many times within the window is held ineligible (N)."""
DEFAULT_FLAP_WINDOW_SECONDS: Final = 600.0
"""The window the downs are counted in (M = 10 minutes)."""
DEFAULT_STABLE_SECONDS: Final = 300.0
"""A held node is released once it has been ready this long without going down again (S = 5 minutes)."""
SMALL_CLUSTER_MAX_NODES: Final = 5
"""A cluster of at most this many nodes is small: Nomad's quorum sizes are 3 and 5, and in such a cluster every node
is a large share of the capacity, so at most one node is ever held back."""
DEFAULT_LARGE_CLUSTER_HELD_FRACTION: Final = 0.2
"""In a larger cluster, at most this fraction of the nodes (rounded down, at least one) is held back at once."""
FLAP_HISTORY_MAX_DOWNS: Final = 64
"""Downs remembered per node; more than the largest threshold anyone sets, and bounded (DESIGN rule 7)."""

# --- rebalancing --------------------------------------------------------------------------------------------------
DEFAULT_REBALANCE: Final = True
"""Rebalancing is on: Nomad never moves work back onto a node that returns."""
DEFAULT_REBALANCE_DRY_RUN: Final = False
DEFAULT_REBALANCE_COOLDOWN_SECONDS: Final = 60.0
"""After a rebalance stop of a job, its next stop waits this long once the replacement is healthy."""
DEFAULT_REBALANCE_MAX_SKEW: Final = 1
"""A group is lopsided when its busiest and idlest schedulable nodes differ by more than this many allocations."""
DEFAULT_REBALANCE_WINDOW_SECONDS: Final = 1800.0
"""A node becoming ready arms rebalancing of the service jobs for this long; a job still unhealthy after that is left
alone, rather than moved at some random later moment nobody connects to the node's return."""
REBALANCE_OPT_OUT_META: Final = "nomad-operator.rebalance"
"""Job meta key; the value "false" opts the job out of rebalancing (stateful jobs such as consul)."""

# --- incidents ----------------------------------------------------------------------------------------------------
INCIDENT_HISTORY_MAX: Final = 100
"""Closed incidents kept for the status and the dashboard; the oldest are dropped first."""
INCIDENT_MAX_LOST_ALLOCATIONS: Final = 10_000
"""Lost allocations recorded per incident; a node of a Raspberry Pi cluster runs a few dozen at most."""

# --- the controller -----------------------------------------------------------------------------------------------
NODE_CONTROLLER_NAME: Final = "nodes"
REBALANCE_CONTROLLER_NAME: Final = "rebalance"
HOLDS_VARIABLE_PATH: Final = "nomad-operator/nodes/holds"
"""The Nomad Variable that records which nodes flap damping holds ineligible, so a new leader releases only the nodes
this operator held (an ineligible node it did not hold belongs to a human and is never touched)."""
HOLDS_VARIABLE_ITEM: Final = "holds"
POLICY_NAME: Final = "default"
"""The NodePolicy resource the controller reads (namespace "default"); missing means the defaults."""
