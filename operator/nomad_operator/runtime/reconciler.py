"""How a controller is declared: its reconcile function, what it watches, and what a reconcile returns.

This is the surface that controller authors touch, so it is small and explicit (controller-runtime's `reconcile`
package is the model):

    Controller(
        "gitops",
        reconcile=reconcile_job,                      # async (ObjectKey) -> Result
        watches=[
            Watch("Job", fields=("Meta", "Status", "JobModifyIndex")),
            Watch("Allocation", map_to=job_of_allocation, fields=("JobID", "ClientStatus", "TaskStates")),
        ],
        max_concurrency=4,
    )

The hazards it guards against: keys that are not hashable or not readable in logs (`ObjectKey` is a small frozen
value that prints as `Job/default/web`); a watch whose mapping returns junk (checked where keys are made); and a
reconciler that returns something other than a `Result` (the workers treat that as an error, with a clear message,
rather than guessing). Reconcilers are level-based: they receive a key, read the current state from the cache, and
converge. A `TerminalError` says "retrying will not help": the key is not retried until it is added again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from nomad_operator.runtime.defaults import DEFAULT_MAX_CONCURRENCY, DEFAULT_RESYNC_PERIOD_SECONDS
from nomad_operator.runtime.errors import UnidentifiableObject

ALL_FIELDS: Final = "*"
"""A field path meaning "keep the whole object" in a watch's projection."""

NOMAD_KINDS: Final = frozenset({"Job", "Allocation", "Node", "Deployment", "Evaluation"})
"""Kinds that are Nomad's own objects (identified by ID and Namespace); any other kind is a custom resource."""

_CONTROLLER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_FIELD_PATH = re.compile(r"^(\*|[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*))*)$")


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """What a reconcile is about: a kind, a namespace ("" for cluster-wide objects such as nodes) and a name or ID."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def key_of(kind: str, obj: Mapping[str, Any]) -> ObjectKey:
    """The key of an object of `kind`: Nomad objects by Namespace and ID, custom resources by metadata."""
    metadata = obj.get("metadata")
    if kind not in NOMAD_KINDS and isinstance(metadata, Mapping):
        name, namespace = metadata.get("name"), metadata.get("namespace", "")
    else:
        name, namespace = obj.get("ID"), obj.get("Namespace", "")
    if not isinstance(name, str) or not name:
        raise UnidentifiableObject(f"{kind} object has no ID or metadata.name: keys {sorted(obj)[:12]}")
    if not isinstance(namespace, str):
        raise UnidentifiableObject(f"{kind} {name!r} has a non-string namespace {namespace!r}")
    return ObjectKey(kind, namespace, name)


def job_of_allocation(alloc: Mapping[str, Any]) -> list[ObjectKey]:
    """Map an allocation (or a deployment or evaluation: all carry JobID) to the key of its job."""
    job_id = alloc.get("JobID")
    if not isinstance(job_id, str) or not job_id:
        return []
    return [ObjectKey("Job", str(alloc.get("Namespace", "default")), job_id)]


job_of_deployment = job_of_allocation
job_of_evaluation = job_of_allocation


def node_of_allocation(alloc: Mapping[str, Any]) -> list[ObjectKey]:
    """Map an allocation to the key of the node it runs on."""
    node_id = alloc.get("NodeID")
    return [ObjectKey("Node", "", node_id)] if isinstance(node_id, str) and node_id else []


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for next: nothing (`Result()`), or another look after `requeue_after` seconds.

    Either way the key's failure count is reset: a requeue is a plan, not a failure. To retry with backoff, raise.
    """

    requeue_after: float | None = None

    def __post_init__(self) -> None:
        delay = self.requeue_after
        if delay is not None and not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
            raise ValueError(f"Result.requeue_after must be a finite number of seconds >= 0, got {delay!r}")


class TerminalError(Exception):
    """Raised by a reconciler when retrying cannot help (an invalid spec, a missing referenced object).

    The error is logged and counted, and the key is not retried; it is reconciled again only when it is added again
    (by a change to a watched object, or by the periodic resync). `reason` is a CamelCase word for conditions.
    """

    def __init__(self, message: str, *, reason: str = "TerminalError") -> None:
        super().__init__(message)
        self.reason = reason


class Reconciler(Protocol):
    """The reconcile function: look at the key's current and desired state, converge, and say when to look again."""

    async def __call__(self, key: ObjectKey, /) -> Result: ...


class KeyMapper(Protocol):
    """Maps a changed object of a watched kind to the keys to reconcile (none, one, or several)."""

    def __call__(self, obj: Mapping[str, Any], /) -> Iterable[ObjectKey]: ...


@dataclass(frozen=True, slots=True)
class Watch:
    """A kind that a controller watches, how a change maps to keys, and which fields the controller reads.

    `fields` are dotted paths into the object (`"Job.Meta"`, `"DeploymentStatus.Healthy"`, `"TaskStates.*.State"`,
    where `*` matches every key of a mapping); the cache keeps only the union of the fields all controllers declare
    for a kind, plus the identity fields. The default, `ALL_FIELDS`, keeps whole objects: correct, but costly on big
    clusters. Include the fields `map_to` reads: an object that vanished in a re-list is mapped from its cached copy.
    Without `map_to` a change enqueues the changed object's own key.
    """

    kind: str
    map_to: KeyMapper | None = None
    fields: Sequence[str] = (ALL_FIELDS,)

    def __post_init__(self) -> None:
        if not self.kind or not self.kind[0].isupper() or not self.kind.isidentifier():
            raise ValueError(f"Watch kind must be a CamelCase identifier such as 'Job', got {self.kind!r}")
        if isinstance(self.fields, str):
            raise TypeError(f"Watch({self.kind!r}).fields must be a sequence of paths, not the string {self.fields!r}")
        bad = [path for path in self.fields if not isinstance(path, str) or not _FIELD_PATH.match(path)]
        if bad:
            raise ValueError(f"Watch({self.kind!r}): invalid field paths {bad!r} (use dotted names, or '*')")
        object.__setattr__(self, "fields", tuple(self.fields))

    def keys_for(self, obj: Mapping[str, Any]) -> list[ObjectKey]:
        """The keys to enqueue when `obj` (of this watch's kind) changes."""
        if self.map_to is None:
            return [key_of(self.kind, obj)]
        keys = list(self.map_to(obj))
        wrong = [key for key in keys if not isinstance(key, ObjectKey)]
        if wrong:
            raise TypeError(f"Watch({self.kind!r}).map_to returned non-ObjectKey values {wrong[:3]!r}")
        return keys


@dataclass(frozen=True, slots=True)
class Controller:
    """A named reconciler and what drives it.

    `name` labels logs and metrics (lowercase, `[a-z0-9_-]`); `max_concurrency` bounds reconciles running at once;
    every key of the primary (first) watched kind is re-enqueued each `resync_period` seconds (None: never).
    """

    name: str
    reconcile: Reconciler
    watches: Sequence[Watch] = field(default_factory=tuple)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    resync_period: float | None = DEFAULT_RESYNC_PERIOD_SECONDS

    def __post_init__(self) -> None:
        if not _CONTROLLER_NAME.match(self.name):
            raise ValueError(f"controller name must match {_CONTROLLER_NAME.pattern}, got {self.name!r}")
        if not callable(self.reconcile):
            raise TypeError(f"controller {self.name!r}: reconcile must be an async callable, got {self.reconcile!r}")
        if not self.watches:
            raise ValueError(f"controller {self.name!r} watches nothing: give at least one Watch")
        if not all(isinstance(watch, Watch) for watch in self.watches):
            raise TypeError(f"controller {self.name!r}: watches must be Watch(...) values")
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise ValueError(f"controller {self.name!r}: max_concurrency must be an int >= 1: {self.max_concurrency!r}")
        if self.resync_period is not None and not self.resync_period > 0:
            raise ValueError(f"controller {self.name!r}: resync_period must be > 0 seconds or None")
        object.__setattr__(self, "watches", tuple(self.watches))

    @property
    def primary_kind(self) -> str:
        """The kind whose keys this controller reconciles (its first watch)."""
        return self.watches[0].kind

    def watched_kinds(self) -> list[str]:
        return list(dict.fromkeys(watch.kind for watch in self.watches))

    def fields_for(self, kind: str) -> tuple[str, ...]:
        """The union of the field paths this controller declared for `kind` (empty if it does not watch it)."""
        paths: dict[str, None] = {}
        for watch in self.watches:
            if watch.kind == kind:
                paths.update(dict.fromkeys(watch.fields))
        return tuple(paths)

    def keys_for(self, kind: str, obj: Mapping[str, Any]) -> list[ObjectKey]:
        """The keys to enqueue when `obj` of `kind` changes, over every watch of that kind, without duplicates."""
        keys: dict[ObjectKey, None] = {}
        for watch in self.watches:
            if watch.kind == kind:
                keys.update(dict.fromkeys(watch.keys_for(obj)))
        return list(keys)
