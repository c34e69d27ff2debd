"""The GitOps controller's Prometheus metrics: syncs, their duration, webhooks by result, jobs by state, drift.

They live on the runtime's registry (one per operator, so two replicas in one test process never mix numbers) and
are labelled by source. Labels never carry a secret, a URL or a message: only source names, results and states.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nomad_operator.runtime.defaults import METRIC_PREFIX
from nomad_operator.server.webhooks import WebhookResult

SYNC_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class GitOpsMetrics:
    """Every GitOps metric, registered on `registry`; also the webhook receiver's `WebhookObserver`."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        p = f"{METRIC_PREFIX}_gitops"
        self.syncs = Counter(f"{p}_syncs", "Sync cycles finished, by source and result.", ["source", "result"],
                             registry=self.registry)  # fmt: skip
        self.sync_duration = Histogram(
            f"{p}_sync_duration_seconds", "Seconds one sync took, from fetch to status.", ["source"],
            buckets=SYNC_DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.writes = Counter(f"{p}_writes", "Writes sent to Nomad (registers and stops), by source.", ["source"],
                              registry=self.registry)  # fmt: skip
        self.webhooks = Counter(f"{p}_webhook_requests", "Webhook requests, by source and result.",
                                ["source", "result"], registry=self.registry)  # fmt: skip
        self.jobs = Gauge(f"{p}_jobs", "Jobs of a source, by sync state and health state.",
                          ["source", "sync", "health"], registry=self.registry)  # fmt: skip
        self.drift = Gauge(f"{p}_drifted_jobs", "Owned jobs whose live spec differs from git.", ["source"],
                           registry=self.registry)  # fmt: skip

    def observe(self, source: str | None, result: WebhookResult) -> None:
        self.webhooks.labels(source or "unknown", result.value).inc()

    def synced(self, source: str, *, result: str, duration: float, writes: int) -> None:
        self.syncs.labels(source, result).inc()
        self.sync_duration.labels(source).observe(duration)
        if writes:
            self.writes.labels(source).inc(writes)

    def set_jobs(self, source: str, counts: Mapping[tuple[str, str], int], *, drifted: int) -> None:
        for (sync, health), count in counts.items():
            self.jobs.labels(source, sync, health).set(count)
        self.drift.labels(source).set(drifted)
