"""The operator runtime: the work queue, reconcilers, the informer cache, custom-resource kinds, conditions, metrics.

Controller authors need only what is exported here: declare a `Controller` with its `Watch`es and an async reconcile
that returns a `Result` (or raises `TerminalError`), and read the cluster from the `Cache`. The modules behind it hold
one concern each:

- `reconciler`: `ObjectKey`, `Result`, `TerminalError`, `Watch`, `Controller` (the declaration API);
- `queue` and `ratelimit`: the keyed work queue with per-key backoff under a global token bucket;
- `workers`: the N workers that run a controller's reconciles and enforce the reconcile contract;
- `cache`: objects by kind, namespace and ID, projected to the declared fields, with indexes;
- `kinds` and `resources`: custom-resource kinds from `crds/`, validation, and their layout in Nomad Variables;
- `conditions`: Ready / Reconciling / Stalled;
- `metrics`: the Prometheus metrics on the runtime's own registry;
- `defaults` and `errors`: every named limit, and the one exception tree.

Informers over Nomad's event stream, leader election and the `Operator` that wires them build on these.
"""

from nomad_operator.runtime.cache import (
    ALLOCATIONS_BY_JOB,
    ALLOCATIONS_BY_NODE,
    Cache,
    CacheDiff,
    CachedKind,
    CacheIndex,
    Projection,
)
from nomad_operator.runtime.conditions import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    ConditionStatus,
    conditions_from_status,
    conditions_to_status,
    find_condition,
    is_ready,
    mark_failed,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    set_condition,
)
from nomad_operator.runtime.errors import (
    CacheFull,
    InvalidResource,
    KindDefinitionError,
    OperatorRuntimeError,
    QueueFull,
    QueueShutDown,
    ResourceTooLarge,
    UnknownKind,
)
from nomad_operator.runtime.kinds import KindDefinition, KindRegistry, load_kinds
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import Clock, ManualClock, MonotonicClock, default_rate_limiter
from nomad_operator.runtime.reconciler import (
    ALL_FIELDS,
    Controller,
    KeyMapper,
    ObjectKey,
    Reconciler,
    Result,
    TerminalError,
    Watch,
    job_of_allocation,
    key_of,
    node_of_allocation,
)
from nomad_operator.runtime.resources import ObjectMeta, Resource
from nomad_operator.runtime.workers import ReconcileWorkers

__all__ = [
    "ALLOCATIONS_BY_JOB",
    "ALLOCATIONS_BY_NODE",
    "ALL_FIELDS",
    "READY",
    "RECONCILING",
    "STALLED",
    "Cache",
    "CacheDiff",
    "CacheFull",
    "CacheIndex",
    "CachedKind",
    "Clock",
    "Condition",
    "ConditionStatus",
    "Controller",
    "InvalidResource",
    "KeyMapper",
    "KindDefinition",
    "KindDefinitionError",
    "KindRegistry",
    "ManualClock",
    "MonotonicClock",
    "ObjectKey",
    "ObjectMeta",
    "OperatorRuntimeError",
    "Projection",
    "QueueFull",
    "QueueShutDown",
    "ReconcileWorkers",
    "Reconciler",
    "Resource",
    "ResourceTooLarge",
    "Result",
    "RuntimeMetrics",
    "TerminalError",
    "UnknownKind",
    "Watch",
    "WorkQueue",
    "conditions_from_status",
    "conditions_to_status",
    "default_rate_limiter",
    "find_condition",
    "is_ready",
    "job_of_allocation",
    "key_of",
    "load_kinds",
    "mark_failed",
    "mark_ready",
    "mark_reconciling",
    "mark_stalled",
    "node_of_allocation",
    "set_condition",
]
