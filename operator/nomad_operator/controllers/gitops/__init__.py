"""The GitOps controller: git sources, signed webhooks, desired state, safe apply, prune, drift, health, status."""
