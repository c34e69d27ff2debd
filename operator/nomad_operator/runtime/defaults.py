"""Every default and named limit of the runtime, in one place.

A limit that lives as a bare number in the middle of a function is a limit nobody can find when it is hit. DESIGN
rule 7 asks that queues, caches, retries and payloads are bounded, each by a named limit with a clear error: the names
are here, and the errors that quote them are in `nomad_operator.runtime.errors`.
"""

from __future__ import annotations

from typing import Final

# --- work queue: per-key backoff and the global token bucket (client-go's DefaultControllerRateLimiter) ---------------
DEFAULT_BACKOFF_BASE_SECONDS: Final = 0.005
"""First retry delay of a failing key; it doubles on every further failure."""
DEFAULT_BACKOFF_MAX_SECONDS: Final = 1000.0
"""Cap of the per-key retry delay."""
DEFAULT_RATE_LIMIT_QPS: Final = 10.0
"""Sustained retries per second across all keys of one queue."""
DEFAULT_RATE_LIMIT_BURST: Final = 100
"""Retries that may go out at once before the sustained rate applies."""
DEFAULT_QUEUE_MAX_KEYS: Final = 100_000
"""Distinct keys one queue holds (ready plus delayed). A cluster of three Raspberry Pis has a few hundred objects; a
queue this deep means a runaway producer, so adding more is refused instead of eating the memory."""

# --- controllers ------------------------------------------------------------------------------------------------------
DEFAULT_MAX_CONCURRENCY: Final = 1
"""Reconciles of one controller that run at once (different keys; one key never runs twice at once)."""
DEFAULT_RESYNC_PERIOD_SECONDS: Final = 600.0
"""Every watched key is re-enqueued this often even without events, so drift nobody announced is still corrected."""
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: Final = 4.0
"""How long in-flight reconciles may take to finish on shutdown. Nomad sends SIGKILL kill_timeout (default 5 s) after
SIGTERM, so the operator must be done before that."""

# --- cache ------------------------------------------------------------------------------------------------------------
DEFAULT_CACHE_MAX_OBJECTS_PER_KIND: Final = 200_000
"""Objects of one kind the informer cache holds before it refuses more."""
DEFAULT_CACHE_MAX_TOMBSTONES_PER_KIND: Final = 10_000
"""Deletions remembered per kind, so that a replayed older event cannot resurrect a deleted object."""

# --- custom resources in Nomad Variables ------------------------------------------------------------------------------
RESOURCE_VARIABLE_PREFIX: Final = "nomad-operator/resources"
"""Variable path prefix of custom resources: `<prefix>/<kind>/<namespace>/<name>`."""
RESOURCE_VARIABLE_NAMESPACE: Final = "default"
"""Nomad namespace of the Variables that hold custom resources (the resource's own namespace is in the path, so a
resource namespace need not exist as a Nomad namespace)."""
RESOURCE_VARIABLE_ITEM: Final = "resource"
"""The one Variable item that holds a resource as compact JSON."""
VARIABLE_PATH_MAX_LENGTH: Final = 128
"""Nomad refuses longer Variable paths (`^[a-zA-Z0-9-_~/]{1,128}$`)."""
VARIABLE_ITEMS_MAX_BYTES: Final = 64 * 1024
"""Nomad refuses Variables whose items (keys plus values) exceed 64 KiB."""
DEFAULT_NAMESPACE: Final = "default"
"""Namespace of a custom resource whose metadata names none."""

# --- metrics ----------------------------------------------------------------------------------------------------------
METRIC_PREFIX: Final = "nomad_operator"
RECONCILE_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Reconciles range from a cache read (milliseconds) to a plan and register against a slow Pi (tens of seconds)."""
EVENT_LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""The product promise is "push to git and the cluster follows within a second": the buckets resolve around 1 s."""
