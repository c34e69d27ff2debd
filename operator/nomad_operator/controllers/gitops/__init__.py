"""The GitOps controller: git sources, signed webhooks, desired state, safe apply, prune, drift, health, status.

Nomad has no notion of "the jobs this repository wants", so pushing to git changes nothing by itself, and the obvious
loop (render every file, register every job) breaks the cluster's rules: it writes when nothing changed, overwrites a
change made meanwhile, deploys a job our converter may have got wrong, and prunes a job because one file failed to
parse. The modules split that loop along those hazards:

- git: `repository` (cheap remote checks, shallow fetches, `tree_policy` limits), `source_ref`, `pathglobs`,
  `git_errors`, `gitauth` and `source_secrets` (credentials that never reach a log), `trigger` (bursts of webhooks
  and polls become one fetch);
- what git wants and what runs: `source_spec`, `desired_state` with `owner_meta`, and `cached_live` (the informer
  cache) or `live_jobs` (straight from Nomad, for one-shot commands);
- decisions, all pure: `sync_plan`, `prune_guard` (rule 4), `drift`, `field_changes`, `health`, `job_statuses`,
  `source_status`, `redaction` (rule 6); limits and defaults in `defaults`;
- writes: `sync_engine` (EnforceIndex registers, waves, the rule-8 `parse_check`);
- one source's loop: `source_sync`; many: `source_set`, `resource_sources` (GitSource resources), `job_events` (cluster
  changes wake the owning source), `webhook_forwarding` (a standby passes webhooks to the leader);
- the command line: `cli`, `cli_source`, `operator_run`.
"""
