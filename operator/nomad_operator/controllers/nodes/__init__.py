"""The node controller: node-down reports, flap damping, rebalancing when a node returns."""
