# The least-privilege ACL policy of nomad-operator: what it reads and writes, and nothing more.
#
# Attach it to the operator's workload identity, so no token has to be created or stored:
#   nomad acl policy apply -namespace default -job nomad-operator \
#     -description "nomad-operator: jobs, node eligibility, its own variables" \
#     nomad-operator jobs/acl/nomad-operator.policy.hcl
# (ansible/roles/operator does this when ACLs are enabled.) With a token from a variable instead, create
# a client token with this policy: `nomad acl token create -name nomad-operator -policy nomad-operator`.
#
# To let the operator manage jobs in more namespaces, copy the namespace block for each of them; never use "*",
# which would also hand it namespaces created later for other teams.

namespace "default" {
  capabilities = [
    # List jobs, allocations, evaluations and deployments: the informers' list+watch, and the event stream's Job,
    # Allocation, Evaluation and Deployment topics (the stream filters events by this capability).
    "list-jobs",
    # Read a job and its allocations, versions and deployments: drift detection, health, the spec hash in owner meta.
    "read-job",
    # Register (with EnforceIndex), plan and deregister jobs: apply and prune; also revert and fail deployments.
    "submit-job",
    # POST /v1/jobs/parse: Nomad's own parse of a job file, checked against ours before a new spec is applied.
    "parse-job",
    # Stop one allocation so the scheduler places it again: rebalancing after a node comes back.
    "alloc-lifecycle",
  ]

  # The operator's own state, nothing else: the leader lock (nomad-operator/leader, which needs write to acquire and
  # renew), custom resources, sync status and inventories. It never touches other teams' variables. Its settings in
  # nomad/jobs/nomad-operator are read by the task's templates through the workload identity's implicit policy,
  # so no rule is needed for them here.
  variables {
    path "nomad-operator/*" {
      capabilities = ["read", "write", "list", "destroy"]
    }
  }
}

# Node read: the node informer (list, Node events) to see nodes go down and come back. Node write: set eligibility
# and drain, which the node controller uses to hold a flapping node and to move work off a failing one.
node {
  policy = "write"
}
