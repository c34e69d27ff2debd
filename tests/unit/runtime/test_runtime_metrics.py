"""The runtime's metrics: names, help, their own registry, and what the queue and workers report into them."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from nomad_operator.runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import ManualClock
from nomad_operator.runtime.reconciler import ObjectKey, Result, TerminalError
from nomad_operator.runtime.workers import ReconcileWorkers


def samples(metrics: RuntimeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_metric_is_prefixed_and_documented() -> None:
    metrics = RuntimeMetrics()
    families = list(text_string_to_metric_families(metrics.render().decode()))
    names = {family.name for family in families}
    assert {
        "nomad_operator_workqueue_depth",
        "nomad_operator_workqueue_adds",
        "nomad_operator_workqueue_retries",
        "nomad_operator_reconcile_duration_seconds",
        "nomad_operator_reconciles",
        "nomad_operator_reconcile_errors",
        "nomad_operator_reconcile_terminal_errors",
        "nomad_operator_event_lag_seconds",
        "nomad_operator_event_stream_reconnects",
        "nomad_operator_cache_objects",
        "nomad_operator_is_leader",
    } <= names
    for family in families:
        assert family.name.startswith("nomad_operator_"), family.name
        assert len(family.documentation) > 20, family.name
    assert CONTENT_TYPE.startswith("text/plain")


def test_two_instances_do_not_share_or_collide() -> None:
    first, second = RuntimeMetrics(), RuntimeMetrics()
    first.set_leader(True)
    assert samples(first)[("nomad_operator_is_leader", ())] == 1.0
    assert samples(second)[("nomad_operator_is_leader", ())] == 0.0
    first.set_leader(False)
    assert samples(first)[("nomad_operator_is_leader", ())] == 0.0


def test_cache_sizes_and_reconnects() -> None:
    metrics = RuntimeMetrics()
    metrics.record_cache_sizes({"Job": 3, "Allocation": 9})
    metrics.stream_reconnected(reason="silence")
    metrics.stream_reconnected(reason="silence")
    found = samples(metrics)
    assert found[("nomad_operator_cache_objects", (("kind", "Allocation"),))] == 9.0
    assert found[("nomad_operator_event_stream_reconnects_total", (("reason", "silence"),))] == 2.0


async def test_queue_and_workers_report_into_the_metrics() -> None:
    metrics = RuntimeMetrics()
    clock = ManualClock()
    queue = WorkQueue[ObjectKey](name="gitops", clock=clock, observer=metrics.queue_observer("gitops"))
    done: list[str] = []

    async def reconcile(key: ObjectKey) -> Result:
        done.append(key.name)
        if key.name == "bad":
            raise TerminalError("no")
        if key.name == "flaky":
            raise RuntimeError("later")
        return Result()

    workers = ReconcileWorkers(
        name="gitops", queue=queue, reconcile=reconcile, observer=metrics.reconcile_observer("gitops")
    )
    for name in ["good", "good", "bad", "flaky"]:
        queue.add(ObjectKey("Job", "default", name), since=clock.now() - 0.5)
    assert samples(metrics)[("nomad_operator_workqueue_depth", (("controller", "gitops"),))] == 3.0
    workers.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(done) < 3:
        assert loop.time() < deadline, "reconciles did not run"
        await asyncio.sleep(0.001)
    await workers.stop(grace=5)
    found = samples(metrics)
    label = (("controller", "gitops"),)
    assert found[("nomad_operator_workqueue_adds_total", label)] == 3.0
    assert found[("nomad_operator_workqueue_retries_total", label)] == 1.0
    assert found[("nomad_operator_workqueue_depth", label)] == 0.0
    assert found[("nomad_operator_reconcile_errors_total", label)] == 2.0
    assert found[("nomad_operator_reconcile_terminal_errors_total", label)] == 1.0
    assert found[("nomad_operator_reconciles_total", (("controller", "gitops"), ("outcome", "success")))] == 1.0
    assert found[("nomad_operator_reconcile_duration_seconds_count", label)] == 3.0
    assert found[("nomad_operator_event_lag_seconds_count", label)] == 3.0
    assert found[("nomad_operator_event_lag_seconds_sum", label)] == 1.5
